"""``atransfer``: the behavioural suite's shapes and sizes on every backend and both
event loops, and what only the asyncio driver has: waits with the loop, deadlines
and socket timeouts, the disk modes, progress on the loop thread, fallback for loops
that cannot watch fds.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import pytest

import zerocopy
from zerocopy import BackendName, Method
from zerocopy._aio import driver as aio_driver
from zerocopy.pytest_plugin import FaultInjector

from ..contract.test_shapes import CASES, Case, _case_id, expected_dst, expected_method
from ..support import (
    LoopFactory,
    Rig,
    data,
    drain,
    epoll_watched,
    feed,
    pattern,
    run,
    sha,
)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_shape(backend: BackendName, loop_factory: LoopFactory, scratch: Path, case: Case) -> None:
    content = bytes(case.size) if case.src == "zero" else data(case.size)
    moved = content[case.start:case.start + case.moved]
    with Rig(scratch, case.src, case.dst, content, src_pos=case.src_pos,
             dst_pos=case.dst_pos, expect_out=len(moved)) as rig:
        result = run(loop_factory, zerocopy.atransfer(
            rig.src, rig.dst, case.count, offset=case.offset, dst_offset=case.dst_offset,
            chunk_size=case.chunk_size, backend=backend))
        assert result.transferred == case.moved
        assert result.eof is case.eof
        assert result.backend == backend
        method, fell_back = expected_method(case, backend)
        assert result.method is method
        assert tuple(f.method for f in result.fallbacks) == fell_back
        if case.src == "file":
            want = case.src_pos if case.offset is not None else case.src_pos + case.moved
            assert rig.src_position() == want
        elif case.src != "zero":
            # read blocking: also shows the source was made blocking again
            assert rig.src_rest() == content[case.moved:]
        if case.dst == "file":
            want = case.dst_pos if case.dst_offset is not None else case.dst_pos + case.moved
            assert rig.dst_position() == want
        assert rig.received() == expected_dst(case, moved)


def _nonblocking_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def test_blocking_modes_restored(backend: BackendName, loop_factory: LoopFactory) -> None:
    """Sockets are driven non-blocking during the call and left as they were found."""
    data = pattern(3 << 20)
    src_feed, src = socket.socketpair()   # src blocking (the default)
    dst, dst_peer = _nonblocking_pair()   # dst non-blocking
    src_feed.setblocking(False)
    seen: list[tuple[bool, bool]] = []

    def progress(done: int) -> None:
        seen.append((os.get_blocking(src.fileno()), os.get_blocking(dst.fileno())))

    async def main() -> bytes:
        async def produce() -> None:
            await feed(src_feed.fileno(), data)
            src_feed.shutdown(socket.SHUT_WR)

        producer = asyncio.create_task(produce())
        consumer = asyncio.create_task(drain(dst_peer.fileno()))
        result = await zerocopy.atransfer(src, dst, backend=backend, progress=progress,
                                          chunk_size=1 << 16)
        assert result.transferred == len(data)
        dst.shutdown(socket.SHUT_WR)
        await producer
        return await consumer

    with src_feed, src, dst, dst_peer:
        assert run(loop_factory, main()) == data
        assert seen and all(flags == (False, False) for flags in seen)
        assert src.getblocking() and os.get_blocking(src.fileno())
        assert not os.get_blocking(dst.fileno())


def test_waits_with_the_loop(backend: BackendName, loop_factory: LoopFactory) -> None:
    """A transfer blocked on an empty socket leaves the loop free, watches exactly
    the fd it waits for, and stops watching once done."""
    data = pattern(200_000)
    src_feed, src = _nonblocking_pair()
    dst, dst_peer = _nonblocking_pair()

    async def main() -> None:
        task = asyncio.create_task(zerocopy.atransfer(src, dst, backend=backend))
        ticks = 0
        for _ in range(20):  # the loop runs other tasks while the transfer waits
            await asyncio.sleep(0.001)
            ticks += 1
        assert ticks == 20 and not task.done()
        assert src.fileno() in epoll_watched()
        consumer = asyncio.create_task(drain(dst_peer.fileno()))
        await feed(src_feed.fileno(), data)
        src_feed.shutdown(socket.SHUT_WR)
        result = await task
        dst.shutdown(socket.SHUT_WR)
        assert result.transferred == len(data) and result.eof
        assert await consumer == data
        assert not epoll_watched() & {src.fileno(), dst.fileno()}

    with src_feed, src, dst, dst_peer:
        run(loop_factory, main())


def test_deadline(backend: BackendName, loop_factory: LoopFactory) -> None:
    """timeout= is a deadline for the whole call: TransferError that is also a
    TimeoutError, with the count delivered before it."""
    head = pattern(70_000)
    src_feed, src = _nonblocking_pair()
    dst, dst_peer = _nonblocking_pair()

    async def main() -> None:
        consumer = asyncio.create_task(drain(dst_peer.fileno()))
        await feed(src_feed.fileno(), head)  # then silence, the peer stays open
        with pytest.raises(zerocopy.TransferError) as info:
            await zerocopy.atransfer(src, dst, timeout=0.3, backend=backend)
        assert isinstance(info.value, TimeoutError)
        assert info.value.transferred == len(head)
        assert info.value.residue == b""
        assert not epoll_watched() & {src.fileno(), dst.fileno()}
        dst.shutdown(socket.SHUT_WR)
        assert await consumer == head

    with src_feed, src, dst, dst_peer:
        run(loop_factory, main())


def test_socket_timeout_bounds_each_wait(backend: BackendName, loop_factory: LoopFactory) -> None:
    """A socket's own timeout bounds each wait (the stdlib's rule), as in transfer()."""
    src_feed, src = socket.socketpair()
    dst, dst_peer = socket.socketpair()
    src.settimeout(0.2)

    async def main() -> None:
        with pytest.raises(zerocopy.TransferError) as info:
            await zerocopy.atransfer(src, dst, backend=backend)
        assert isinstance(info.value, TimeoutError)
        assert info.value.transferred == 0

    with src_feed, src, dst, dst_peer:
        run(loop_factory, main())
        assert src.gettimeout() == 0.2


@pytest.mark.parametrize("disk", ["loop", "thread"])
def test_progress_on_the_loop_thread(backend: BackendName, loop_factory: LoopFactory,
                                     make_file: Callable[..., Path],
                                     disk: Literal["loop", "thread"]) -> None:
    data = pattern(1 << 20)
    src = make_file(data)
    dst = make_file()
    calls: list[tuple[int, int]] = []

    async def main() -> zerocopy.TransferResult:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            return await zerocopy.atransfer(
                fin, fout, chunk_size=100_000, backend=backend, disk=disk,
                progress=lambda n: calls.append((n, threading.get_ident())))

    result = run(loop_factory, main())
    assert result.transferred == len(data)
    assert dst.read_bytes() == data
    assert {ident for _, ident in calls} == {threading.get_ident()}
    counts = [n for n, _ in calls]
    assert counts == sorted(counts) and counts[-1] == len(data) and len(counts) >= 10


def test_progress_error_stops_with_counts(backend: BackendName, loop_factory: LoopFactory,
                                          make_file: Callable[..., Path]) -> None:
    data = pattern(1 << 20)
    src = make_file(data)
    dst = make_file()
    seen: list[int] = []

    def progress(done: int) -> None:
        seen.append(done)
        if done >= 300_000:
            raise KeyError("stop")

    async def main() -> None:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            with pytest.raises(KeyError) as info:
                await zerocopy.atransfer(fin, fout, chunk_size=100_000, progress=progress,
                                         backend=backend, disk="loop")
            done = info.value.transferred  # type: ignore[attr-defined]
            # A chunk may be short (copy_file_range may return less than asked), so
            # where the callback stops is whatever it was told last: the counts must
            # be that number, not a later one, and nothing may move after it.
            assert seen[-1] >= 300_000 and all(n < 300_000 for n in seen[:-1])
            assert all(0 < b - a <= 100_000 for a, b in zip([0, *seen], seen))
            assert done == seen[-1] and fin.tell() == done and fout.tell() == done
        assert dst.read_bytes() == data[:done]

    run(loop_factory, main())


def test_progress_oserror_is_the_callers(backend: BackendName, loop_factory: LoopFactory,
                                        make_file: Callable[..., Path]) -> None:
    # OSError(EINVAL) from the callback: a seekable source could fail over part way on
    # that errno, were it taken for the method's (issue 11); it is re-raised as it is.
    data = pattern(4 << 16)
    src, dst = make_file(data), make_file()

    def progress(done: int) -> None:
        raise OSError(errno.EINVAL, "raised by progress")

    async def main() -> None:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            with pytest.raises(OSError) as info:
                await zerocopy.atransfer(fin, fout, chunk_size=1 << 16, progress=progress,
                                         backend=backend)
            exc = info.value
            assert not isinstance(exc, zerocopy.TransferError)
            assert exc.strerror == "raised by progress"
            assert getattr(exc, "transferred") == fin.tell() == 1 << 16
        assert dst.read_bytes() == data[:1 << 16]

    run(loop_factory, main())


class CountingExecutor(Executor):
    """A one-thread pool that counts the jobs handed to it."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1)
        self.jobs = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs += 1
        return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait, cancel_futures=cancel_futures)


@pytest.mark.parametrize(("shape", "disk", "offloaded"), [
    ("file-file", "auto", True), ("file-file", "loop", False), ("file-file", "thread", True),
    ("file-socket", "auto", False), ("file-socket", "thread", True),
])
def test_disk_modes(backend: BackendName, loop_factory: LoopFactory, make_file: Callable[..., Path],
                    shape: str, disk: Literal["auto", "loop", "thread"],
                    offloaded: bool) -> None:
    """Which calls run off the loop: file->file by default, anything on request."""
    data = pattern(3 << 20)
    src = make_file(data)
    executor = CountingExecutor()

    async def main() -> bytes:
        with open(src, "rb") as fin:
            if shape == "file-file":
                dst = make_file()
                with open(dst, "wb") as fout:
                    await zerocopy.atransfer(fin, fout, backend=backend, disk=disk,
                                             executor=executor)
                return dst.read_bytes()
            a, b = _nonblocking_pair()
            with a, b:
                consumer = asyncio.create_task(drain(b.fileno()))
                await zerocopy.atransfer(fin, a, backend=backend, disk=disk,
                                         executor=executor)
                a.shutdown(socket.SHUT_WR)
                return await consumer

    try:
        assert sha(run(loop_factory, main())) == sha(data)
    finally:
        executor.shutdown()
    assert (executor.jobs > 0) is offloaded


def test_thread_mode_keeps_the_loop_free(loop_factory: LoopFactory, scratch: Path) -> None:
    """One 64 MiB file->file step in the executor: the loop ticks meanwhile (with
    disk="loop" it could not tick at all until the copy is done)."""
    src, dst = scratch / "big", scratch / "copy"
    with open(src, "wb") as f:
        f.write(pattern(1 << 20) * 64)

    async def main() -> int:
        ticks = 0
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            task = asyncio.create_task(zerocopy.atransfer(
                fin, fout, chunk_size=64 << 20, backend="portable", disk="thread"))
            while not task.done():
                ticks += 1
                await asyncio.sleep(0)
            assert (await task).transferred == 64 << 20
        return ticks

    assert run(loop_factory, main()) > 0
    assert os.path.getsize(dst) == 64 << 20


def test_buffered_read_ahead_first(backend: BackendName, loop_factory: LoopFactory) -> None:
    """A buffered pipe reader's read-ahead goes first, written without blocking."""
    data = pattern(500_000)
    r, w = os.pipe()
    dst, peer = _nonblocking_pair()
    os.set_blocking(w, False)

    async def main() -> bytes:
        consumer = asyncio.create_task(drain(peer.fileno()))
        await feed(w, data[:30_000])
        with open(r, "rb", buffering=1 << 16) as reader:
            assert isinstance(reader, io.BufferedReader)
            assert len(reader.peek()) == 30_000  # read-ahead the kernel no longer has

            async def produce() -> None:
                await feed(w, data[30_000:])
                os.close(w)

            producer = asyncio.create_task(produce())
            result = await zerocopy.atransfer(reader, dst, backend=backend)
            await producer
        assert result.transferred == len(data)
        dst.shutdown(socket.SHUT_WR)
        return await consumer

    with dst, peer:
        assert run(loop_factory, main()) == data


class BlindLoop(asyncio.SelectorEventLoop):
    """A loop that cannot watch fds, like the Windows proactor."""

    def add_reader(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise NotImplementedError

    def add_writer(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise NotImplementedError


def test_loop_that_cannot_watch_fds(backend: BackendName) -> None:
    """Fallback: each wait is a poll() in the executor; still correct, and a cancel
    still wakes that thread and stops the transfer."""
    data = pattern(2 << 20)
    src_feed, src = socket.socketpair()
    dst, dst_peer = socket.socketpair()

    def slow_feed() -> None:
        for i in range(0, len(data), 1 << 18):
            time.sleep(0.002)
            src_feed.sendall(data[i:i + (1 << 18)])
        src_feed.shutdown(socket.SHUT_WR)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        feeder = threading.Thread(target=slow_feed)
        feeder.start()
        consumer = loop.run_in_executor(None, _read_all, dst_peer)
        result = await zerocopy.atransfer(src, dst, backend=backend)
        assert result.transferred == len(data)
        dst.shutdown(socket.SHUT_WR)
        await loop.run_in_executor(None, feeder.join)
        stuck = asyncio.create_task(zerocopy.atransfer(src_feed2, dst2, backend=backend))
        await asyncio.sleep(0.05)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await stuck
        assert info.value.transferred == 0  # type: ignore[attr-defined]
        return await consumer

    src_feed2, keep = socket.socketpair()
    dst2, keep2 = socket.socketpair()
    with src_feed, src, dst, dst_peer, src_feed2, keep, dst2, keep2:
        assert sha(run(BlindLoop, main())) == sha(data)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def test_refused_before_anything_moves(loop_factory: LoopFactory,
                                       make_file: Callable[..., Path]) -> None:
    src = make_file(b"abc")
    dst = make_file()

    async def main() -> None:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            with pytest.raises(ValueError, match="disk must be"):
                await zerocopy.atransfer(fin, fout, disk="elsewhere")  # type: ignore[arg-type]
            with pytest.raises(zerocopy.ZeroCopyError):
                await zerocopy.atransfer(fin, fin)  # not open for writing
            assert fin.tell() == 0

    run(loop_factory, main())
    assert dst.read_bytes() == b""


def test_result_methods_match_transfer(backend: BackendName, loop_factory: LoopFactory,
                                       make_file: Callable[..., Path]) -> None:
    """Same plan, same method as the blocking call for a file to a socket."""
    data = pattern(1 << 20)
    a, b = _nonblocking_pair()

    async def main() -> zerocopy.TransferResult:
        consumer = asyncio.create_task(drain(b.fileno()))
        with open(make_file(data), "rb") as fin:
            result = await zerocopy.atransfer(fin, a, backend=backend)
        a.shutdown(socket.SHUT_WR)
        assert await consumer == data
        return result

    with a, b:
        result = run(loop_factory, main())
    assert result.method is (Method.READ_WRITE if backend == "portable" else Method.SENDFILE)


def test_the_thread_poll_retries_poll_eagain(zerocopy_faults: FaultInjector) -> None:
    # The executor wait of loops that cannot watch fds (_poll_in_thread): poll's own
    # EAGAIN is retried as in the blocking waits, and raised (not as BlockingIOError)
    # once the bound is passed (issue 11).
    a, b = socket.socketpair()
    with a, b:
        zerocopy_faults.fail("poll", errno.EAGAIN, times=3)
        assert aio_driver._poll(a.fileno(), True, b.fileno(), 5.0) is True
        zerocopy_faults.fail("poll", errno.EAGAIN, times=1000)
        with pytest.raises(zerocopy.ZeroCopyError) as info:
            aio_driver._poll(a.fileno(), True, b.fileno(), 5.0)
    assert info.value.errno == errno.EAGAIN and not isinstance(info.value, BlockingIOError)
