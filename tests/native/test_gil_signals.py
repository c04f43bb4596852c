"""Signal handlers still run promptly though the core lets the GIL go for many calls.

Python runs a handler only when the loop calls ``PyErr_CheckSignals``.  A blocking write
that a signal cuts short after moving some bytes returns the short count, not EINTR, so
the core must take a short count from a destination that normally takes everything as
"Python must look now": if it called again instead and the peer stalled, that call
would block for ever and the handler with it.  Here the peer reads slowly until the
second signal is delivered and then stalls for good; the first signal cut a call short
too and its handler let the transfer go on, so the second short count is judged by
what the core learnt of the destination, not by the rule for a first one.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

import zerocopy
from zerocopy import BackendName, Method

from ..support import data, tcp_pair

FIRST = 0.1  # seconds to the first signal
# ... and from its handler to the second: less than the core's safety net (50 ms), so
# only the short count can make the core look at once; no third signal comes to help.
SECOND = 0.02
HANG = 10  # seconds after which the watchdog ends a transfer that missed the signal
ROUTES = {Method.SENDFILE: "", Method.SPLICE: "sendfile", Method.READ_WRITE: "sendfile,splice"}


class Interrupted(Exception):
    """What the handler raises at the second signal."""


class SlowReader(threading.Thread):
    """Reads a little at a time until the second signal is delivered, then stops for
    good.  It learns of deliveries from the signal wakeup fd, which the C-level
    handler writes at once, before any Python handler has run."""

    def __init__(self, sock: socket.socket, wakeup: int) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.wakeup = wakeup
        self.got = bytearray()

    def run(self) -> None:
        seen = 0
        sock = self.sock.fileno()
        while seen < 2:
            ready, _, _ = select.select([self.wakeup, sock], [], [], 0.01)
            if self.wakeup in ready:
                seen += len(os.read(self.wakeup, 16))
            elif sock in ready:
                chunk = self.sock.recv(16 << 10)
                if not chunk:
                    return
                self.got += chunk
                time.sleep(0.005)


@pytest.fixture
def second_signal_raises() -> Iterator[list[float]]:
    """SIGALRM after FIRST: the handler arms the second and returns; at the second
    it raises."""
    calls: list[float] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise Interrupted("second signal")
        signal.setitimer(signal.ITIMER_REAL, SECOND)

    old = signal.signal(signal.SIGALRM, handler)
    try:
        yield calls
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _rest(sock: socket.socket, size: int) -> bytes:
    """The *size* bytes still on their way (part may wait in the sender's queue for
    the receive window), then a check that nothing more comes."""
    sock.settimeout(HANG)
    chunks = []
    while size > 0:
        chunk = sock.recv(size)
        assert chunk, "the connection ended early"
        chunks.append(chunk)
        size -= len(chunk)
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    return b"".join(chunks)


@pytest.mark.parametrize("method", list(ROUTES), ids=lambda m: m.value)
def test_signal_cutting_a_blocked_write_short_is_handled(
        backend: BackendName, make_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
        second_signal_raises: list[float], method: Method) -> None:
    monkeypatch.setenv("ZEROCOPY_DISABLE", ROUTES[method])
    content = data(16 << 20)  # more than the buffers hold and the reader takes meanwhile
    sock, peer = tcp_pair()
    # Small buffers: the writer is woken as soon as the reader makes a little room, so
    # each call moves bytes before it waits, and a signal then cuts it short (a call
    # that waits before moving anything gets EINTR instead).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 << 10)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    reader = SlowReader(peer, wake_r)
    # Closing the peer with bytes unread resets the connection: a transfer stuck in a
    # call that missed the signal then fails instead of hanging.
    watchdog = threading.Timer(HANG, peer.close)
    try:
        with sock, peer, open(make_file(content), "rb", buffering=0) as src:
            first = zerocopy.plan(src, sock, backend=backend).methods[0]
            if first is not method:
                pytest.skip(f"the {backend!r} backend starts with {first.value} here")
            reader.start()
            watchdog.start()
            signal.setitimer(signal.ITIMER_REAL, FIRST)
            started = time.monotonic()
            with pytest.raises(Interrupted) as info:
                zerocopy.transfer(src, sock, backend=backend)
            elapsed = time.monotonic() - started
            watchdog.cancel()
            reader.join(HANG)
            delivered = getattr(info.value, "transferred")
            assert elapsed < HANG / 2, f"the handler ran {elapsed:.1f}s after the start"
            assert len(second_signal_raises) == 2
            assert 0 < delivered < len(content)
            assert src.tell() == delivered
            got = bytes(reader.got)
            assert got + _rest(peer, delivered - len(got)) == content[:delivered]
    finally:
        watchdog.cancel()
        signal.set_wakeup_fd(old_wakeup)
        os.close(wake_r)
        os.close(wake_w)
