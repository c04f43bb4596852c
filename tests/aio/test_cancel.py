"""Cancelling ``atransfer`` at random points (start, middle, near the end) for each
shape, backend and loop.  Whatever the point, the contract holds: the raised
CancelledError carries ``.transferred`` (exactly what the destination got) and
``.residue`` (bytes taken from a stream source and not delivered), file positions
match what was delivered, stream sources lose and repeat nothing, no reader or
writer stays registered, blocking modes and fds are as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from pathlib import Path
from typing import Literal

import pytest

import zerocopy
from zerocopy import BackendName
from zerocopy._pipes import pool

from .. import support as _kit
from ..support import LoopFactory, drain, epoll_watched, feed, open_fds, run, tcp_pair

SIZE = (2 << 20) + 17
CHUNK = 1 << 15
STREAMS = ("unix", "tcp", "pipe")
SHAPES = [("file", "unix"), ("file", "tcp"), ("file", "pipe"), ("unix", "unix"),
          ("tcp", "file"), ("unix", "pipe"), ("pipe", "unix"), ("pipe", "file"),
          ("pipe", "pipe"), ("file", "file")]
#: "stalled": the destination's reader stops, the transfer blocks on it (bytes in
#: our splice pipe or in a half-written buffer), then it is cancelled
Point = Literal["start", "mid", "end", "stalled"]
CASES = [(src, dst, point) for src, dst in SHAPES for point in ("start", "mid", "end", "stalled")
         if point != "stalled" or dst in STREAMS]


class Ends:
    """A source and a destination of the given kinds, each stream with a peer fd
    (non-blocking, driven from the loop); the ends themselves are blocking, as a
    caller would usually pass them."""

    def __init__(self, scratch: Path, src_kind: str, dst_kind: str, content: bytes) -> None:
        self.stack = contextlib.ExitStack()
        self.open: set[int] = set()
        self.src_kind, self.dst_kind = src_kind, dst_kind
        self.feed_fd = self.peer_fd = -1
        if src_kind == "file":
            (scratch / "src").write_bytes(content)
            self.src_fd = self._own(os.open(scratch / "src", os.O_RDONLY))
        else:
            self.feed_fd, self.src_fd = self._stream(src_kind)
        self.dst_path = scratch / "dst"
        if dst_kind == "file":
            self.dst_fd = self._own(os.open(self.dst_path, os.O_WRONLY | os.O_CREAT))
        else:
            self.dst_fd, self.peer_fd = self._stream(dst_kind)
        for peer in (self.feed_fd, self.peer_fd):
            if peer >= 0:
                os.set_blocking(peer, False)

    def _own(self, fd: int) -> int:
        self.open.add(fd)
        self.stack.callback(self.close_fd, fd)
        return fd

    def close_fd(self, fd: int) -> None:
        """Close *fd* once: a second close could hit a reused number."""
        if fd in self.open:
            self.open.discard(fd)
            os.close(fd)

    def _stream(self, kind: str) -> tuple[int, int]:
        """(writer's end, reader's end) of a fresh stream of *kind*."""
        if kind == "pipe":
            r, w = os.pipe()
            return self._own(w), self._own(r)
        a, b = tcp_pair() if kind == "tcp" else socket.socketpair()
        for end in (a, b):  # small kernel buffers: the 2 MiB cannot hide in them
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        return self._own(a.detach()), self._own(b.detach())

    def close(self) -> None:
        self.stack.close()


async def _feed_and_close(ends: Ends, content: bytes) -> None:
    await feed(ends.feed_fd, content)
    ends.close_fd(ends.feed_fd)


async def _cancel_at(point: Point, rng: random.Random, ends: Ends, content: bytes,
                     backend: BackendName) -> BaseException:
    """Start the transfer, cancel it at *point*, return the CancelledError."""
    consumer = (asyncio.create_task(drain(ends.peer_fd))
                if ends.peer_fd >= 0 and point != "stalled" else None)
    producer = (asyncio.create_task(_feed_and_close(ends, content))
                if ends.feed_fd >= 0 else None)
    low, high = ((SIZE // 4, 3 * SIZE // 4) if point == "mid" else (SIZE - 4 * CHUNK, SIZE - 1))
    target = rng.randint(low, high)
    task: asyncio.Task[zerocopy.TransferResult] | None = None

    def progress(done: int) -> None:
        if point != "start" and done >= target and task is not None:
            task.cancel()

    task = asyncio.create_task(zerocopy.atransfer(ends.src_fd, ends.dst_fd, chunk_size=CHUNK,
                                                  progress=progress, backend=backend))
    if point == "start":
        await asyncio.sleep(0)  # the transfer ran up to its first wait or step end
        task.cancel()
    elif point == "stalled":
        for _ in range(5000):
            await asyncio.sleep(0.001)
            if ends.dst_fd in epoll_watched():  # waiting for room in the destination
                break
            if task.done():
                break
        else:
            raise AssertionError("the transfer never blocked on its destination")
        task.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        await task
    exc = info.value
    assert not epoll_watched() & {ends.src_fd, ends.dst_fd}
    for fd, kind in ((ends.src_fd, ends.src_kind), (ends.dst_fd, ends.dst_kind)):
        assert os.get_blocking(fd), f"{kind} end left non-blocking"
    # Read what each side holds now, so the checks below see the whole story.
    if point == "stalled":
        consumer = asyncio.create_task(drain(ends.peer_fd))
    if consumer is not None:
        ends.close_fd(ends.dst_fd)
        exc.received = await consumer  # type: ignore[attr-defined]
    if producer is not None:
        os.set_blocking(ends.src_fd, False)
        exc.rest = await drain(ends.src_fd)  # type: ignore[attr-defined]
        await producer
    return exc


def _buffers_in_between(src: str, dst: str, backend: BackendName) -> bool:
    """Whether the method holds bytes between a stream source and the destination:
    read/write's buffer, or our pipe (splice between two sockets)."""
    if src not in STREAMS or dst not in STREAMS:
        return False
    return backend == "portable" or (src != "pipe" and dst != "pipe")


@pytest.mark.parametrize(("src", "dst", "point"), CASES,
                         ids=[f"{s}-{d}-{p}" for s, d, p in CASES])
def test_cancel(backend: BackendName, loop_factory: LoopFactory, scratch: Path, src: str, dst: str,
                point: Point) -> None:
    content = _kit.data(SIZE)
    rng = random.Random(f"{src}-{dst}-{point}-{backend}")
    run(loop_factory, asyncio.sleep(0))  # libuv opens its process-wide signal pipe once
    pool.clear()
    fds_before = open_fds()
    ends = Ends(scratch, src, dst, content)
    try:
        exc = run(loop_factory, _cancel_at(point, rng, ends, content, backend))
        done: int = exc.transferred  # type: ignore[attr-defined]
        residue: bytes = exc.residue  # type: ignore[attr-defined]
        if point == "mid":
            assert 0 < done < SIZE
        if point == "start":
            assert done < SIZE
        if point == "stalled":
            assert 0 < done < SIZE
            assert bool(residue) is _buffers_in_between(src, dst, backend)
        if dst == "file":
            assert ends.dst_path.read_bytes() == content[:done]
            assert os.lseek(ends.dst_fd, 0, os.SEEK_CUR) == done
        else:
            assert exc.received == content[:done]  # type: ignore[attr-defined]
        if src == "file":
            assert residue == b""
            assert os.lseek(ends.src_fd, 0, os.SEEK_CUR) == done
        else:
            # nothing lost, nothing repeated: delivered + handed back + unread = all
            assert residue == content[done:done + len(residue)]
            assert exc.rest == content[done + len(residue):]  # type: ignore[attr-defined]
    finally:
        ends.close()
    pool.clear()
    assert open_fds() == fds_before


def test_cancelled_before_it_ran(loop_factory: LoopFactory, scratch: Path) -> None:
    """Cancelled before its first step: nothing happened, nothing to report."""
    content = _kit.data(SIZE)
    ends = Ends(scratch, "file", "file", content)

    async def main() -> None:
        task = asyncio.create_task(zerocopy.atransfer(ends.src_fd, ends.dst_fd))
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert not hasattr(info.value, "transferred")

    try:
        run(loop_factory, main())
        assert ends.dst_path.read_bytes() == b""
        assert os.lseek(ends.src_fd, 0, os.SEEK_CUR) == 0
    finally:
        ends.close()


@pytest.mark.parametrize("disk", ["loop", "thread"])
def test_cancel_in_the_last_step(backend: BackendName, loop_factory: LoopFactory, scratch: Path,
                                 disk: Literal["loop", "thread"]) -> None:
    """A cancel asked for by the last progress call still raises with the counts
    (without the driver's last look, the task would end cancelled without them)."""
    content = _kit.data(SIZE)
    ends = Ends(scratch, "file", "file", content)

    async def main() -> None:
        task: asyncio.Task[zerocopy.TransferResult] | None = None

        def progress(done: int) -> None:
            if done == SIZE and task is not None:
                task.cancel()

        task = asyncio.create_task(zerocopy.atransfer(
            ends.src_fd, ends.dst_fd, chunk_size=CHUNK, progress=progress, backend=backend,
            disk=disk))
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert info.value.transferred == SIZE  # type: ignore[attr-defined]
        assert info.value.residue == b""  # type: ignore[attr-defined]

    try:
        run(loop_factory, main())
        assert ends.dst_path.read_bytes() == content
        assert os.lseek(ends.src_fd, 0, os.SEEK_CUR) == SIZE
    finally:
        ends.close()


def test_repeated_cancel_waits_for_the_worker(loop_factory: LoopFactory,
                                              scratch: Path) -> None:
    """Cancelled again and again while a step runs in the executor: the call still
    returns only after the worker let go, so the positions it restores hold."""
    content = _kit.data(SIZE)
    ends = Ends(scratch, "file", "file", content)

    async def main() -> None:
        task = asyncio.create_task(zerocopy.atransfer(
            ends.src_fd, ends.dst_fd, chunk_size=CHUNK, backend="portable", disk="thread"))
        await asyncio.sleep(0)
        for _ in range(5):
            task.cancel()
            await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        done: int = info.value.transferred  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)  # a worker still running would move bytes meanwhile
        assert os.path.getsize(ends.dst_path) == done
        assert os.lseek(ends.src_fd, 0, os.SEEK_CUR) == done
        assert ends.dst_path.read_bytes() == content[:done]

    try:
        run(loop_factory, main())
    finally:
        ends.close()


def test_outer_timeout_keeps_the_counts(backend: BackendName, loop_factory: LoopFactory,
                                        scratch: Path) -> None:
    """asyncio.timeout() cancels the task and raises TimeoutError from our
    CancelledError: the counts are on its __cause__."""
    content = _kit.data(SIZE)
    ends = Ends(scratch, "unix", "unix", content)

    async def main() -> None:
        consumer = asyncio.create_task(drain(ends.peer_fd))
        await feed(ends.feed_fd, content[:100_000])  # then the source goes quiet
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(0.2):
                await zerocopy.atransfer(ends.src_fd, ends.dst_fd, backend=backend)
        cause = info.value.__cause__
        assert isinstance(cause, asyncio.CancelledError)
        assert cause.transferred == 100_000  # type: ignore[attr-defined]
        assert cause.residue == b""  # type: ignore[attr-defined]
        ends.close_fd(ends.dst_fd)
        assert await consumer == content[:100_000]

    try:
        run(loop_factory, main())
    finally:
        ends.close()
