"""1,000 concurrent ``atransfer`` calls in one event loop, mixed shapes: every byte
checked, no fd left open, and no thread per transfer (the thread count, sampled all
along, never exceeds the start plus the executor's two workers)."""

from __future__ import annotations

import asyncio
import os
import random
import resource
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import zerocopy
from zerocopy._pipes import pool

from ..support import LoopFactory, drain, feed, open_fds, os_threads, run
from .test_cancel import Ends

COUNT = 1000
WORKERS = 2
SHAPES = [("file", "unix"), ("file", "tcp"), ("file", "pipe"), ("unix", "unix"),
          ("tcp", "file"), ("unix", "pipe"), ("pipe", "unix"), ("pipe", "file"),
          ("pipe", "pipe"), ("file", "file")]
FDS_NEEDED = COUNT * 8  # at worst two streams, a splice pipe and their peers each


@pytest.fixture
def enough_fds() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= FDS_NEEDED:
        return
    if hard != resource.RLIM_INFINITY and hard < FDS_NEEDED:
        pytest.skip(f"needs {FDS_NEEDED} fds, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (FDS_NEEDED, hard))


class InFlight:
    """How many transfers are under way at once, and the most seen."""

    now = most = 0

    @classmethod
    def enter(cls) -> None:
        cls.now += 1
        cls.most = max(cls.most, cls.now)

    @classmethod
    def leave(cls) -> None:
        cls.now -= 1


async def _one(ends: Ends, content: bytes) -> None:
    """One transfer with its peers; checks every byte and position."""
    producer = consumer = None
    if ends.feed_fd >= 0:
        async def produce() -> None:
            await feed(ends.feed_fd, content)
            ends.close_fd(ends.feed_fd)

        producer = asyncio.create_task(produce())
    if ends.peer_fd >= 0:
        consumer = asyncio.create_task(drain(ends.peer_fd))
    InFlight.enter()
    try:
        result = await zerocopy.atransfer(ends.src_fd, ends.dst_fd)
    finally:
        InFlight.leave()
    assert result.transferred == len(content) and result.eof
    if producer is not None:
        await producer
    if consumer is not None:
        ends.close_fd(ends.dst_fd)
        assert await consumer == content
    else:
        assert ends.dst_path.read_bytes() == content
    if ends.src_kind == "file":
        assert os.lseek(ends.src_fd, 0, os.SEEK_CUR) == len(content)


async def _all(cases: list[tuple[Ends, bytes]], threads_at_start: int) -> int:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(WORKERS))  # file->file steps go here
    most = os_threads()
    tasks = [asyncio.create_task(_one(ends, content)) for ends, content in cases]
    pending = set(tasks)
    while pending:  # sample the thread count while the transfers run
        _, pending = await asyncio.wait(pending, timeout=0.002)
        most = max(most, os_threads())
    for task in tasks:
        task.result()  # re-raise the first failure, if any
    return most


def test_thousand_concurrent(enough_fds: None, loop_factory: LoopFactory, scratch: Path) -> None:
    run(loop_factory, asyncio.sleep(0))  # libuv opens its process-wide signal pipe once
    pool.clear()
    InFlight.most = 0
    fds_at_start = open_fds()
    threads_at_start = os_threads()
    rng = random.Random(1000)
    cases = []
    try:
        for i in range(COUNT):
            src, dst = SHAPES[i % len(SHAPES)]
            content = rng.randbytes(rng.choice((0, 1, rng.randint(2, 200_000))))
            where = scratch / str(i)
            where.mkdir()
            cases.append((Ends(where, src, dst, content), content))
        most = run(loop_factory, _all(cases, threads_at_start))
    finally:
        for ends, _ in cases:
            ends.close()
    pool.clear()
    assert open_fds() == fds_at_start
    assert most <= threads_at_start + WORKERS, (most, threads_at_start)
    assert InFlight.most > COUNT // 2  # they really ran side by side
