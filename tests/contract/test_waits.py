"""Waiting, deadlines, signals and progress (docs/transfer.md, "Waiting, deadlines, signals, progress").

A socket's timeout bounds each wait; ``timeout=`` bounds the whole call; non-blocking
fds are waited on with poll, not spun on; a signal handler that raises stops the
transfer promptly; a progress callback sees increasing totals and can cancel.  Every
way out leaves positions consistent with what was delivered.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

import zerocopy
from zerocopy import BackendName, TransferError

from ..support import Rig, Writer, data, tcp_pair, unix_pair

PAIRS = {"tcp": tcp_pair, "unix": unix_pair}
STALL = 0.3  # seconds a wait must last before it gives up


class Interrupted(Exception):
    """What our SIGALRM handler raises."""


@pytest.fixture
def alarm() -> Iterator[Callable[[float], None]]:
    """Arm SIGALRM to raise Interrupted after the given delay (main thread only)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("alarm")

    old = signal.signal(signal.SIGALRM, handler)

    def arm(delay: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, delay)

    try:
        yield arm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _read_to_eof(sock: socket.socket, timeout: float = 30) -> bytes:
    """Everything until the peer's EOF (each wait bounded by *timeout*)."""
    chunks = []
    sock.settimeout(timeout)
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _drain(sock: socket.socket) -> bytes:
    """Everything a socket has queued right now, without waiting."""
    chunks = []
    sock.setblocking(False)
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    return b"".join(chunks)


def _stalled_source(kind: str, first: bytes) -> tuple[socket.socket, socket.socket]:
    """A (feed, src) pair where *first* is queued and then nothing comes."""
    feed, src = PAIRS[kind]()
    feed.sendall(first)
    return feed, src


# -- socket timeouts ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_socket_timeout_stalled_source(backend: BackendName, make_file: Callable[..., Path],
                                       kind: str) -> None:
    content = data(70000)
    feed, src = _stalled_source(kind, content[:1000])
    dst_path = make_file()
    with feed, src, open(dst_path, "wb", buffering=0) as dst:
        src.settimeout(STALL)
        started = time.monotonic()
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, dst, backend=backend)
        assert time.monotonic() - started >= STALL * 0.9
        err = info.value
        assert isinstance(err, TimeoutError)
        assert err.transferred == 1000 and err.residue == b""
        assert dst.tell() == 1000
        assert src.gettimeout() == STALL  # the socket is as it was
        # It goes on where it stopped.
        writer = Writer(feed, content[1000:])
        writer.start()
        result = zerocopy.transfer(src, dst, backend=backend)
        writer.finish()
    assert result.transferred == len(content) - 1000 and result.eof
    assert dst_path.read_bytes() == content


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_socket_timeout_stalled_destination(backend: BackendName, make_file: Callable[..., Path],
                                            kind: str) -> None:
    content = data(16 << 20)
    sock, peer = PAIRS[kind]()
    with sock, peer, open(make_file(content), "rb") as src:
        src.seek(5)
        sock.settimeout(STALL)
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, sock, backend=backend)  # nobody reads
        err = info.value
        assert isinstance(err, TimeoutError)
        assert 0 < err.transferred < len(content) - 5
        assert src.tell() == 5 + err.transferred
        # The connection is alive: everything delivered arrives, then nothing more.
        # (Read until EOF: on TCP, bytes counted as sent may still sit in the send
        # queue behind a full window, so "what is queued right now" can be short.)
        sock.shutdown(socket.SHUT_WR)
        assert _read_to_eof(peer) == content[5:5 + err.transferred]


def test_deadline_on_blocking_socket(backend: BackendName, make_file: Callable[..., Path]) -> None:
    feed, src = _stalled_source("tcp", data(1000))
    dst_path = make_file()
    with feed, src, open(dst_path, "wb") as dst:
        assert src.gettimeout() is None and os.get_blocking(src.fileno())
        started = time.monotonic()
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, dst, timeout=STALL, backend=backend)
        assert time.monotonic() - started >= STALL * 0.9
        assert isinstance(info.value, TimeoutError)
        assert info.value.transferred == 1000 and dst.tell() == 1000
        assert os.get_blocking(src.fileno())  # switched back after the call
    assert dst_path.read_bytes() == data(1000)


def test_deadline_bounds_the_whole_call(backend: BackendName, make_file: Callable[..., Path]) -> None:
    """A source that trickles (never stalling as long as a wait limit) is still cut
    off by the deadline: it is for the whole transfer, not for each wait."""
    feed, src = unix_pair()
    stop = threading.Event()
    sent = bytearray()

    def trickle() -> None:
        while not stop.wait(0.02):
            chunk = data(100_000)[len(sent):len(sent) + 100]
            feed.sendall(chunk)
            sent.extend(chunk)

    dst_path = make_file()
    trickler = threading.Thread(target=trickle)
    with feed, src, open(dst_path, "wb") as dst:
        src.settimeout(STALL)
        trickler.start()
        started = time.monotonic()
        try:
            with pytest.raises(TransferError) as info:
                zerocopy.transfer(src, dst, timeout=0.5, backend=backend)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            trickler.join()
        assert isinstance(info.value, TimeoutError)
        assert 0.45 <= elapsed < 10
        got = info.value.transferred
        assert got > 0 and dst.tell() == got
        rest = _drain(src)
    assert dst_path.read_bytes() + rest == bytes(sent)


# -- non-blocking fds: poll, not a busy loop ---------------------------------------------


def _late_writer(feed: socket.socket | int, payload: bytes) -> threading.Thread:
    def run() -> None:
        time.sleep(STALL)
        Writer(feed, payload).run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_nonblocking_source_is_polled(backend: BackendName, make_file: Callable[..., Path],
                                      kind: str) -> None:
    content = data(65537)
    feed, src = PAIRS[kind]()
    dst_path = make_file()
    with feed, src, open(dst_path, "wb") as dst:
        src.setblocking(False)
        late = _late_writer(feed, content)
        cpu, wall = time.thread_time(), time.monotonic()
        result = zerocopy.transfer(src, dst, backend=backend)
        cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
        late.join(10)
        assert not os.get_blocking(src.fileno())  # left as the caller set it
    assert result.transferred == len(content) and result.eof
    assert dst_path.read_bytes() == content
    assert wall >= STALL * 0.9
    assert cpu < wall / 2, f"{cpu:.3f}s of CPU in {wall:.3f}s: a busy loop"


def test_nonblocking_destination_is_polled(backend: BackendName, make_file: Callable[..., Path]) -> None:
    content = data(1 << 20)
    r, w = os.pipe()  # 64 KiB of pipe: the transfer waits for the reader
    os.set_blocking(w, False)
    chunks: list[bytes] = []

    def late_reader() -> None:
        time.sleep(STALL)
        while chunk := os.read(r, 1 << 16):
            chunks.append(chunk)

    reader = threading.Thread(target=late_reader, daemon=True)
    reader.start()
    try:
        with open(make_file(content), "rb") as src:
            cpu, wall = time.thread_time(), time.monotonic()
            result = zerocopy.transfer(src, w, backend=backend)
            cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
    finally:
        os.close(w)
        reader.join(10)
        os.close(r)
    assert result.transferred == len(content)
    assert b"".join(chunks) == content
    assert wall >= STALL * 0.9
    assert cpu < wall / 2, f"{cpu:.3f}s of CPU in {wall:.3f}s: a busy loop"


# -- signals -------------------------------------------------------------------------------


@pytest.mark.parametrize("dst_kind", ["file", "tcp"])
def test_alarm_stops_stalled_source(backend: BackendName, scratch: Path, dst_kind: str,
                                    alarm: Callable[[float], None]) -> None:
    content = data(5000)
    feed, src = _stalled_source("tcp", content[:1000])
    with feed, src, Rig(scratch, "file", dst_kind, b"", expect_out=1000) as rig:
        alarm(0.2)
        started = time.monotonic()
        with pytest.raises(Interrupted) as info:
            zerocopy.transfer(src, rig.dst, backend=backend)
        assert time.monotonic() - started < 5  # promptly, not at the next byte
        err = info.value
        assert getattr(err, "transferred") == 1000 and getattr(err, "residue") == b""
        if dst_kind == "file":
            assert rig.dst_position() == 1000
        assert rig.received() == content[:1000] + (b"#####"[1000:] if dst_kind == "file"
                                                   else b"")


@pytest.mark.parametrize("route", ["explicit", "default"])
def test_alarm_stops_stalled_destination(backend: BackendName, make_file: Callable[..., Path],
                                         alarm: Callable[[float], None], route: str) -> None:
    """A blocking sendfile cut short by a signal returns the partial count, not
    EINTR: the handler must still run then, or the next call blocks for ever."""
    if route == "default" and backend != "native":
        pytest.skip("the default route (the core's fast path) is the native backend's")
    content = data(16 << 20)
    sock, peer = tcp_pair()
    with sock, peer, open(make_file(content), "rb", buffering=0) as src:
        src.seek(3)
        alarm(0.2)
        with pytest.raises(Interrupted) as info:
            zerocopy.transfer(src, sock, backend=backend if route == "explicit" else None)
        delivered = getattr(info.value, "transferred")
        assert 0 < delivered < len(content)
        assert src.tell() == 3 + delivered
        sock.shutdown(socket.SHUT_WR)  # then read to EOF: TCP may still hold some
        assert _read_to_eof(peer) == content[3:3 + delivered]


def _fill(sock: socket.socket) -> None:
    """Fill a connected socket's buffers until a send would block."""
    sock.setblocking(False)
    try:
        while True:
            sock.send(bytes(65536))
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)


@pytest.mark.parametrize("route", ["explicit", "default"])
def test_handler_raising_oserror_before_first_byte(backend: BackendName, make_file: Callable[..., Path],
                                                   route: str) -> None:
    """``raise TimeoutError()`` in a handler is the caller's own exception, not a
    failed system call: not retried by another method or route, type unchanged."""
    if route == "default" and backend != "native":
        pytest.skip("the default route (the core's fast path) is the native backend's")

    def handler(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError()

    sock, peer = unix_pair()
    old = signal.signal(signal.SIGALRM, handler)
    # If the exception were swallowed the transfer would block for ever: the
    # watchdog then closes the peer, so the test fails instead of hanging.
    watchdog = threading.Timer(10, peer.close)
    try:
        with sock, peer, open(make_file(data(1 << 20)), "rb", buffering=0) as src:
            _fill(sock)
            src.seek(9)
            watchdog.start()
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            with pytest.raises(TimeoutError) as info:
                zerocopy.transfer(src, sock, backend=backend if route == "explicit" else None)
            assert type(info.value) is TimeoutError  # the handler's own, not a TransferError
            assert getattr(info.value, "transferred") == 0
            assert src.tell() == 9
    finally:
        watchdog.cancel()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_handler_that_returns_lets_the_transfer_go_on(backend: BackendName,
                                                      make_file: Callable[..., Path]) -> None:
    """EINTR with a handler that does not raise: retried, nothing lost."""
    calls = []

    def handler(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    content = data(65537)
    feed, src = unix_pair()
    old = signal.signal(signal.SIGALRM, handler)
    dst_path = make_file()
    try:
        with feed, src, open(dst_path, "wb") as dst:
            signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
            late = _late_writer(feed, content)
            result = zerocopy.transfer(src, dst, backend=backend)
            signal.setitimer(signal.ITIMER_REAL, 0)
            late.join(10)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert calls  # the handler ran during the wait
    assert result.transferred == len(content)
    assert dst_path.read_bytes() == content


def test_keyboard_interrupt(backend: BackendName, make_file: Callable[..., Path]) -> None:
    """Ctrl-C (SIGINT to the main thread) during a stalled socket -> socket splice."""
    feed, src = _stalled_source("unix", data(3000))
    sock, peer = unix_pair()
    main = threading.get_ident()
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
    try:
        with feed, src, sock, peer:
            timer.start()
            with pytest.raises(KeyboardInterrupt) as info:
                zerocopy.transfer(src, sock, backend=backend)
            err = info.value
            assert getattr(err, "transferred") == 3000
            assert getattr(err, "residue") == b""
            assert _drain(peer) == data(3000)
            assert any("3000 bytes delivered" in note for note in err.__notes__)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)


# -- progress --------------------------------------------------------------------------------


@pytest.mark.parametrize("src_kind,dst_kind", [("file", "file"), ("file", "tcp"),
                                               ("tcp", "file"), ("pipe", "unix")])
def test_progress_totals(backend: BackendName, scratch: Path, src_kind: str, dst_kind: str) -> None:
    content = data(300_001)
    seen: list[int] = []
    with Rig(scratch, src_kind, dst_kind, content, expect_out=len(content)) as rig:
        result = zerocopy.transfer(rig.src, rig.dst, chunk_size=4096, progress=seen.append,
                                   backend=backend)
        got = rig.received()
    assert result.transferred == len(content)
    assert got[:len(content)] == content
    assert seen == sorted(set(seen)) and seen[0] > 0  # strictly increasing
    assert seen[-1] == len(content)
    assert all(b - a <= 4096 for a, b in zip([0, *seen], seen))  # one report per chunk
    assert len(seen) >= len(content) // 4096


class Cancel(Exception):
    """What our progress callback raises."""


@pytest.mark.parametrize("src_kind,dst_kind", [("file", "file"), ("file", "unix"),
                                               ("unix", "file"), ("tcp", "tcp"),
                                               ("pipe", "pipe")])
def test_progress_cancels(backend: BackendName, scratch: Path, src_kind: str, dst_kind: str) -> None:
    content = data(1 << 20)
    seen: list[int] = []

    def progress(total: int) -> None:
        seen.append(total)
        if total >= 100_000:
            raise Cancel(total)

    with Rig(scratch, src_kind, dst_kind, content) as rig:
        with pytest.raises(Cancel) as info:
            zerocopy.transfer(rig.src, rig.dst, chunk_size=10_000, progress=progress,
                              backend=backend)
        delivered = getattr(info.value, "transferred")
        residue = getattr(info.value, "residue")
        assert delivered == seen[-1] == info.value.args[0]
        if src_kind == "file":
            assert rig.src_position() == delivered and residue == b""
            rest = content[delivered:]
        else:
            rest = residue + rig.src_rest()
        got = rig.received()
    if dst_kind == "file":
        got = got[:delivered]
    assert got + rest == content  # delivered, handed back, still in the source: all of it


# --- timeout= bounds the whole transfer even when nothing ever blocks

def test_deadline_ends_a_transfer_that_never_waits(backend: BackendName, scratch: Path) -> None:
    src_path = scratch / "big"
    with open(src_path, "wb") as f:
        f.truncate(4 << 30)  # sparse: 4 GiB of zeros that cost no memory
    with open(src_path, "rb") as src, open(scratch / "copy", "wb") as dst:
        with pytest.raises(zerocopy.TransferError) as info:
            zerocopy.transfer(src, dst, timeout=0.05, chunk_size=1 << 20, backend=backend)
        err = info.value
        assert isinstance(err, TimeoutError)
        assert err.errno == errno.ETIMEDOUT
        assert 0 < err.transferred < 4 << 30
        assert src.tell() == err.transferred  # the position matches what was delivered
        assert os.fstat(dst.fileno()).st_size == err.transferred


def test_deadline_not_reached_is_no_error(backend: BackendName, make_file: Callable[..., Path]) -> None:
    data = os.urandom(3 << 20)
    with open(make_file(data), "rb") as src, open(make_file(), "wb+") as dst:
        result = zerocopy.transfer(src, dst, timeout=60, chunk_size=1 << 20, backend=backend)
        dst.seek(0)
        assert dst.read() == data
    assert result.transferred == len(data) and result.eof
