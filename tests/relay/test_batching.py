"""The pump's read batching: a bulk stream's reads wait for SO_RCVLOWAT bytes, yet a
burst's tail, a small message after a burst, and the socket's own mark all come out
as if nothing batched."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import threading
import time
from collections.abc import Callable

import pytest

import zerocopy
from zerocopy._relay import pump as relay_pump

from ..support import relay_pair

TIMEOUT = 20.0

#: Far above the pump's 1 ms batching wait, far below anything a user would notice.
PROMPT = 0.5

BURST = 16 << 20


def lowat(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)


def relay_in_thread(a: socket.socket, b: socket.socket, use_async: bool, method: str,
                idle_timeout: float | None = None,
                ) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}

    def run() -> None:
        try:
            if use_async:
                out["result"] = asyncio.run(zerocopy.arelay(
                    a, b, method=method, idle_timeout=idle_timeout))
            else:
                out["result"] = zerocopy.relay(a, b, method=method,
                                               idle_timeout=idle_timeout)
        except BaseException as exc:  # reported by the test, not lost in the thread
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = []
    while count > 0:
        chunk = sock.recv(min(count, 1 << 20))
        assert chunk, "end of file before the bytes the peer sent"
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def timed(call: Callable[[], bytes]) -> tuple[bytes, float]:
    started = time.monotonic()
    got = call()
    return got, time.monotonic() - started


@pytest.mark.parametrize("use_async", [False, True], ids=["relay", "arelay"])
@pytest.mark.parametrize("method", ["copy", "splice"])
def test_burst_tail_and_a_reply_arrive_without_end_of_file(
        method: str, use_async: bool, implementation: str) -> None:
    """A burst that does not end on the mark is delivered whole while the sender
    keeps its side open; a message after it, and the reply, come at once."""
    client, relay_a = relay_pair()
    relay_b, server = relay_pair()
    thread, out = relay_in_thread(relay_a, relay_b, use_async, method)
    burst = random.randbytes(BURST + 1234)
    sender = threading.Thread(target=client.sendall, args=(burst,))
    sender.start()
    got = read_exactly(server, len(burst))
    sender.join(TIMEOUT)
    assert hashlib.sha256(got).digest() == hashlib.sha256(burst).digest()
    for _ in range(3):
        client.sendall(b"ping")
        got, seconds = timed(lambda: read_exactly(server, 4))
        assert got == b"ping" and seconds < PROMPT
        server.sendall(b"pong")
        got, seconds = timed(lambda: read_exactly(client, 4))
        assert got == b"pong" and seconds < PROMPT
    client.shutdown(socket.SHUT_WR)
    assert server.recv(1) == b""
    server.shutdown(socket.SHUT_WR)
    assert client.recv(1) == b""
    thread.join(TIMEOUT)
    assert "error" not in out
    result = out["result"]
    assert isinstance(result, zerocopy.RelayResult)
    assert (result.a_to_b, result.b_to_a, result.ended) == (len(burst) + 12, 12, "eof")
    for s in (client, relay_a, relay_b, server):
        s.close()


@pytest.mark.parametrize("use_async", [False, True], ids=["relay", "arelay"])
@pytest.mark.parametrize("method", ["copy", "splice"])
def test_bulk_batches_and_the_mark_is_given_back(method: str, use_async: bool) -> None:
    """While a bulk stream flows the source's SO_RCVLOWAT is raised (so the pump does
    batch); once the relay returns, the socket has the mark its owner set."""
    if relay_pump._core_pump() is None:
        pytest.skip("batching is the compiled pump's; this build has none")
    client, relay_a = relay_pair()
    relay_b, server = relay_pair()
    relay_a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 3)
    thread, out = relay_in_thread(relay_a, relay_b, use_async, method, idle_timeout=0.3)
    seen: set[int] = set()
    sending = threading.Event()
    sending.set()

    def sample() -> None:
        while sending.is_set():
            seen.add(lowat(relay_a))
            time.sleep(0.0002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    burst = random.randbytes(4 * BURST)
    sender = threading.Thread(target=client.sendall, args=(burst,))
    sender.start()
    got = read_exactly(server, len(burst))
    sender.join(TIMEOUT)
    sending.clear()
    sampler.join(TIMEOUT)
    thread.join(TIMEOUT)
    assert "error" not in out
    result = out["result"]
    assert isinstance(result, zerocopy.RelayResult)
    assert (result.a_to_b, result.ended) == (len(burst), "idle")
    assert got == burst
    assert max(seen) >= 65536, f"the mark never rose: {sorted(seen)}"
    assert lowat(relay_a) == 3 and lowat(relay_b) == 1
    for s in (client, relay_a, relay_b, server):
        s.close()
