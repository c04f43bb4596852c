"""``zerocopy relay`` as a process, for what issue 10 changed: both --method values
move every byte (hashed, 100 connections at once), a reset crosses the relay as a
reset, the idle timeout closes a quiet pair, the PROXY path (a task per connection)
and the direct path (none) log the same line."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading

import pytest

from ..support import RELAY_TIMEOUT, Echo, echo_exchange, start_relay, stop_relay

TIMEOUT = RELAY_TIMEOUT


def auto_via() -> str:
    """What the log line says for --method auto."""
    from zerocopy._relay.common import AUTO_METHOD
    return "splice" if AUTO_METHOD == "splice" else "copy"


@pytest.mark.parametrize("method", ["splice", "copy", "auto"])
def test_hundred_concurrent_connections_hashed(echo: Echo, method: str) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--method", method)
    payloads = [os.urandom(size) for size in (0, 1, 4096, 70_000, 1 << 20) * 20]
    results: dict[int, bytes] = {}

    def one(i: int) -> None:
        results[i] = echo_exchange(port, payloads[i])

    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(payloads))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
    finally:
        err = stop_relay(proc)
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
        err = stop_relay(proc)
    assert "reset by client" in err


def test_idle_timeout_closes_a_quiet_pair(echo: Echo) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--idle-timeout", "0.3")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(b"x")
            assert client.recv(10) == b"x"
            assert client.recv(10) == b""  # closed by the relay after 0.3 s of nothing
    finally:
        err = stop_relay(proc)
    assert "up=1 down=1" in err and f" idle {auto_via()}\n" in err


def test_max_pipes_zero_copies_every_connection(echo: Echo) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--method", "splice",
                             "--max-pipes", "0")
    try:
        payload = os.urandom(3 << 20)
        assert echo_exchange(port, payload) == payload
    finally:
        err = stop_relay(proc)
    assert f"up={3 << 20} down={3 << 20}" in err and " eof copy\n" in err


def test_bad_max_pipes_is_one_line() -> None:
    done = subprocess.run([sys.executable, "-P", "-m", "zerocopy", "relay", "127.0.0.1:0",
                           "127.0.0.1:1", "--max-pipes", "-1"], capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 1
    assert done.stderr == "zerocopy: --max-pipes must be >= 0\n"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("method", ["splice", "copy"])
def test_each_loop_relays_bulk_and_small(echo: Echo, method: str, loop: str) -> None:
    """--loop: both event loops move a bulk stream (long enough for the pump to batch
    its reads) and the small exchanges after it, every byte hashed."""
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="--loop uvloop needs uvloop installed")
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--method", method, "--loop", loop)
    try:
        for size in ((16 << 20) + 123, 1, 4096, 0):
            payload = os.urandom(size)
            assert hashlib.sha256(echo_exchange(port, payload)).digest() == \
                hashlib.sha256(payload).digest(), size
    finally:
        err = stop_relay(proc)
    assert err.count(f" eof {method}\n") == 4
