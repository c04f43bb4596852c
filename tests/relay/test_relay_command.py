"""``zerocopy relay`` as a process, for what issue 10 changed: both --method values
move every byte (hashed, 100 connections at once), a reset crosses the relay as a
reset, the idle timeout closes a quiet pair, the PROXY path (a task per connection)
and the direct path (none) log the same line."""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Echo:
    """Echoes every byte back, half-closes on EOF; a thread per connection."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.server.settimeout(TIMEOUT)
        self.port = self.server.getsockname()[1]
        #: how each connection ended, as the echo's reads saw it: "eof" or "reset"
        self.endings: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        try:
            while chunk := conn.recv(1 << 16):
                conn.sendall(chunk)
            self.endings.put("eof")
            conn.shutdown(socket.SHUT_WR)
        except ConnectionResetError:
            self.endings.put("reset")
        except OSError as exc:
            self.endings.put(repr(exc))
        finally:
            conn.close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.server.close()


def auto_via() -> str:
    """What the log line says for --method auto."""
    from zerocopy._relay.pump import AUTO_METHOD
    return "splice" if AUTO_METHOD == "splice" else "copy"


def start_relay(*argv: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-P", "-m", "zerocopy", "relay",
                             f"127.0.0.1:{port}", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(f"relaying 127.0.0.1:{port} -> ")
    return proc, port


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    return err


def exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        def send() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        got = bytearray()
        while chunk := sock.recv(1 << 16):
            got += chunk
        sender.join(TIMEOUT)
    return bytes(got)


@pytest.mark.parametrize("method", ["splice", "copy", "auto"])
def test_hundred_concurrent_connections_hashed(echo: Echo, method: str) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--method", method)
    payloads = [os.urandom(size) for size in (0, 1, 4096, 70_000, 1 << 20) * 20]
    results: dict[int, bytes] = {}

    def one(i: int) -> None:
        results[i] = exchange(port, payloads[i])

    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(payloads))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
    finally:
        err = stop(proc)
    assert len(results) == 100
    for i, payload in enumerate(payloads):
        assert hashlib.sha256(results[i]).digest() == hashlib.sha256(payload).digest(), i
    via = {"splice": "splice", "copy": "copy", "auto": auto_via()}[method]
    assert err.count(f" eof {via}\n") == 100
    assert f"up={1 << 20} down={1 << 20}" in err


@pytest.mark.parametrize("proxy", [False, True], ids=["direct", "send-proxy"])
def test_client_reset_reaches_the_target_as_a_reset(echo: Echo, proxy: bool) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", *(["--send-proxy", "v1"] if proxy else []))
    try:
        client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        client.sendall(b"ping")
        got = b""
        while not got.endswith(b"ping"):
            got += client.recv(100)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        # The echo's next read sees the relay's RST, never a clean end of file.
        assert echo.endings.get(timeout=TIMEOUT) == "reset"
    finally:
        err = stop(proc)
    assert "reset by client" in err


def test_idle_timeout_closes_a_quiet_pair(echo: Echo) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--idle-timeout", "0.3")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(b"x")
            assert client.recv(10) == b"x"
            assert client.recv(10) == b""  # closed by the relay after 0.3 s of nothing
    finally:
        err = stop(proc)
    assert "up=1 down=1" in err and f" idle {auto_via()}\n" in err


def test_max_pipes_zero_copies_every_connection(echo: Echo) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--method", "splice",
                             "--max-pipes", "0")
    try:
        payload = os.urandom(3 << 20)
        assert exchange(port, payload) == payload
    finally:
        err = stop(proc)
    assert f"up={3 << 20} down={3 << 20}" in err and " eof copy\n" in err


def test_bad_max_pipes_is_one_line() -> None:
    done = subprocess.run([sys.executable, "-P", "-m", "zerocopy", "relay", "127.0.0.1:0",
                           "127.0.0.1:1", "--max-pipes", "-1"], capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 1
    assert done.stderr == "zerocopy: --max-pipes must be >= 0\n"
