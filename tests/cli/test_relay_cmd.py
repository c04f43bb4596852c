"""``zerocopy relay``, ``send`` and ``recv`` as processes: the first line, bytes both
ways with half-close, round-robin past a dead target, the connection limit, PROXY
headers sent, SIGTERM exit 0, and send/recv against socat and nc."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..support import (RELAY_TIMEOUT, Echo, echo_exchange, free_port, start_relay,
                       stop_relay)

TIMEOUT = RELAY_TIMEOUT


def test_relay_round_trip_and_next_target(echo: Echo) -> None:
    dead = free_port()  # nothing listens: connection refused, next target
    proc, port = start_relay(f"127.0.0.1:{dead}", f"127.0.0.1:{echo.port}")
    try:
        for size in (0, 1, 3 << 20):
            payload = os.urandom(size)
            assert hashlib.sha256(echo_exchange(port, payload)).digest() == \
                hashlib.sha256(payload).digest()
    finally:
        err = stop_relay(proc)
    assert "next target" in err
    assert f"-> 127.0.0.1:{echo.port} up={3 << 20} down={3 << 20}" in err


def test_all_targets_down_resets_the_client() -> None:
    proc, port = start_relay(f"127.0.0.1:{free_port()}")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
    finally:
        err = stop_relay(proc)
    assert "no-target" in err


def test_connection_limit_holds_the_second_client(echo: Echo) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--max-connections", "1")
    try:
        first = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        first.sendall(b"one")
        assert first.recv(10) == b"one"
        second = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        second.sendall(b"two")
        with pytest.raises(TimeoutError):
            second.recv(10)  # not accepted while the first is open
        first.close()
        second.settimeout(TIMEOUT)
        assert second.recv(10) == b"two"
        second.close()
    finally:
        stop_relay(proc)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_proxy_header_reaches_the_target(echo: Echo, version: str) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--send-proxy", version)
    try:
        got = echo_exchange(port, b"hello")
    finally:
        stop_relay(proc)
    assert got.endswith(b"hello")
    if version == "v1":
        assert got.startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ")
        assert got.endswith(f" {port}\r\nhello".encode())
    else:
        assert got.startswith(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")


def test_accept_proxy_strips_the_header(echo: Echo) -> None:
    proc, port = start_relay(f"127.0.0.1:{echo.port}", "--accept-proxy")
    try:
        got = echo_exchange(port, b"PROXY TCP4 10.1.2.3 10.0.0.1 5555 80\r\npayload")
    finally:
        err = stop_relay(proc)
    assert got == b"payload" and "10.1.2.3:5555 -> " in err


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed (apt install socat)")
def test_send_to_socat_and_recv_from_socat(tmp_path: Path) -> None:
    data = os.urandom(5 << 20)
    src, out = tmp_path / "src", tmp_path / "out"
    src.write_bytes(data)
    port = free_port()
    listener = subprocess.Popen(["socat", "-u", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr",
                                 f"OPEN:{out},creat,trunc"], stderr=subprocess.PIPE)
    _wait_port(port)
    sent = subprocess.run([sys.executable, "-m", "zerocopy", "send", str(src),
                           f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=TIMEOUT)
    assert sent.returncode == 0, sent.stderr
    assert listener.wait(TIMEOUT) == 0
    assert out.read_bytes() == data and f"{len(data)} bytes in" in sent.stderr
    assert "GB/s by sendfile" in sent.stderr
    # recv from socat, to stdout
    port = free_port()
    recv = subprocess.Popen([sys.executable, "-m", "zerocopy", "recv", f"127.0.0.1:{port}", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert recv.stderr is not None
    assert recv.stderr.readline().startswith(b"listening on")
    # socat in the background: recv's stdout is a pipe that must be read meanwhile
    writer = subprocess.Popen(["socat", "-u", f"OPEN:{src}", f"TCP:127.0.0.1:{port}"])
    got, err = recv.communicate(timeout=TIMEOUT)
    assert writer.wait(TIMEOUT) == 0
    assert recv.returncode == 0 and got == data and b"GB/s" in err


@pytest.mark.skipif(shutil.which("nc") is None, reason="nc not installed (apt install netcat-openbsd)")
def test_recv_from_nc_with_count(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    src, out = tmp_path / "src", tmp_path / "out"
    src.write_bytes(data)
    port = free_port()
    recv = subprocess.Popen([sys.executable, "-m", "zerocopy", "recv", f"127.0.0.1:{port}",
                             str(out)], stderr=subprocess.PIPE)
    assert recv.stderr is not None
    assert recv.stderr.readline().startswith(b"listening on")
    with open(src, "rb") as f:
        subprocess.run(["nc", "-N", "127.0.0.1", str(port)], stdin=f, check=True,
                       timeout=TIMEOUT)
    assert recv.wait(TIMEOUT) == 0 and out.read_bytes() == data


def _wait_port(port: int) -> None:
    """Wait until something listens on *port* without connecting (socat -u accepts
    one connection only): /proc/net/tcp lists it in state 0A, LISTEN."""
    import time
    deadline = time.monotonic() + TIMEOUT
    needle = f":{port:04X} 00000000:0000 0A"
    while time.monotonic() < deadline:
        if needle in Path("/proc/net/tcp").read_text():
            return
        time.sleep(0.02)
    raise AssertionError("socat did not listen")
