"""A signal handler's or the progress callback's own OSError is the caller's, not a
system call's (issue 11): it is re-raised as it is, with the counts, and never taken
for "this method can't" (no fallback, before or after the first byte) nor wrapped in a
TransferError.  The core and the Python backends mark their own errors
(``zerocopy._errors.from_a_call``); these tests raise the errno a method's "can't"
would have (EINVAL), so a mistaken fallback shows."""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

import zerocopy
from zerocopy import BackendName, Interrupted, TransferError

from ..support import data, pattern, tcp_pair

Make = Callable[..., Path]
HANDLER_SAYS = "raised by the test's signal handler"


@pytest.fixture
def alarm_raises_einval() -> Iterator[Callable[[float], None]]:
    """Arm SIGALRM after a delay; its handler raises OSError(EINVAL)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise OSError(errno.EINVAL, HANDLER_SAYS)

    def arm(delay: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, delay)

    old = signal.signal(signal.SIGALRM, handler)
    try:
        yield arm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Later(threading.Thread):
    """Runs *action* when :meth:`now` is called, or after *delay* seconds at the
    latest: a mistaken fallback would then find a peer that answers and succeed
    (so the test fails, never hangs), while the right answer costs no wait."""

    def __init__(self, action: Callable[[], None], delay: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.action, self.delay, self.go = action, delay, threading.Event()

    def run(self) -> None:
        self.go.wait(self.delay)
        self.action()

    def now(self) -> None:
        self.go.set()
        self.join(30)
        assert not self.is_alive()


def _assert_the_handlers(exc: BaseException) -> int:
    assert not isinstance(exc, TransferError)  # the handler's own, unchanged
    assert isinstance(exc, OSError) and isinstance(exc, Interrupted)
    assert exc.errno == errno.EINVAL and exc.strerror == HANDLER_SAYS
    return exc.transferred


def test_handler_oserror_before_the_first_byte_is_not_a_fallback(
        backend: BackendName, make_file: Make,
        alarm_raises_einval: Callable[[float], None]) -> None:
    a, b = tcp_pair()

    def send() -> None:
        with b:
            b.sendall(pattern(1000))

    late = Later(send)
    late.start()
    try:
        with a, open(make_file(), "wb") as dst:
            alarm_raises_einval(0.05)
            with pytest.raises(OSError) as info:
                zerocopy.transfer(a, dst, backend=backend)
    finally:
        late.now()
    assert _assert_the_handlers(info.value) == 0
    assert getattr(info.value, "residue") == b""


@pytest.mark.parametrize("route", ["explicit", "default"])
def test_handler_oserror_part_way_is_not_a_fallback(
        backend: BackendName, make_file: Make, route: str,
        alarm_raises_einval: Callable[[float], None]) -> None:
    # A seekable source may fail over part way (Fallback.offset); a handler's EINVAL
    # while sendfile waits on a stalled peer must not: the default route is the
    # core's fast path, which hands a "can't" over to the full path.
    if route == "default" and backend != "native":
        pytest.skip("the default route (the core's fast path) is the native backend's")
    content = data(16 << 20)
    sock, peer = tcp_pair()
    received = bytearray()

    def drain() -> None:
        peer.settimeout(30)
        while chunk := peer.recv(1 << 20):
            received.extend(chunk)

    late = Later(drain)
    late.start()
    with sock, peer, open(make_file(content), "rb", buffering=0) as src:
        src.seek(3)
        try:
            alarm_raises_einval(0.1)
            with pytest.raises(OSError) as info:
                zerocopy.transfer(src, sock, backend=backend if route == "explicit" else None)
        finally:
            sock.shutdown(socket.SHUT_WR)
            late.now()
        delivered = _assert_the_handlers(info.value)
        assert 0 < delivered < len(content)
        assert src.tell() == 3 + delivered
    assert received == content[3:3 + delivered]


def test_progress_oserror_is_the_callers(backend: BackendName, make_file: Make) -> None:
    # The progress callback's OSError(EINVAL) after the first chunk: a seekable source
    # could fail over there, so a mistaken one would go on to the end.
    src_path, dst_path = make_file(pattern(4 << 16)), make_file()

    def progress(done: int) -> None:
        raise OSError(errno.EINVAL, HANDLER_SAYS)

    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        with pytest.raises(OSError) as info:
            zerocopy.transfer(src, dst, chunk_size=1 << 16, progress=progress, backend=backend)
        assert src.tell() == 1 << 16
    assert _assert_the_handlers(info.value) == 1 << 16
    assert dst_path.read_bytes() == pattern(4 << 16)[:1 << 16]


def test_progress_oserror_from_a_c_function_is_the_callers(backend: BackendName,
                                                           make_file: Make) -> None:
    # os.sysconf(65536) raises OSError(EINVAL) from C: no frame of the callback shows
    # in the traceback, so only the mark set where the callback is called tells.
    src_path, dst_path = make_file(pattern(4 << 16)), make_file()
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        with pytest.raises(OSError) as info:
            zerocopy.transfer(src, dst, chunk_size=1 << 16, progress=os.sysconf,
                              backend=backend)
        assert src.tell() == 1 << 16
    exc = info.value
    assert not isinstance(exc, TransferError) and exc.errno == errno.EINVAL
    assert getattr(exc, "transferred") == 1 << 16
