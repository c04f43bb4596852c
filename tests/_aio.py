"""Helpers for the asyncio tests: run a coroutine on a chosen loop, feed and drain
fds from the loop itself (no threads), and ask the kernel which fds the process's
epoll instances still watch (the check that a cancelled transfer left no reader or
writer behind, on any loop: both asyncio's selector and libuv use epoll on Linux).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def run(factory: LoopFactory, main: Coroutine[Any, Any, _T]) -> _T:
    """Run *main* to completion on a fresh loop from *factory*."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def ready(fd: int, writable: bool) -> None:
    """Wait until *fd* is readable (or writable) with the running loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    if writable:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await fut
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def drain(fd: int, limit: int = -1) -> bytes:
    """Read a non-blocking socket or pipe to end of stream (or *limit* bytes)."""
    chunks = bytearray()
    while limit < 0 or len(chunks) < limit:
        want = 1 << 20 if limit < 0 else min(1 << 20, limit - len(chunks))
        try:
            chunk = os.read(fd, want)
        except BlockingIOError:
            await ready(fd, writable=False)
            continue
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


async def feed(fd: int, data: bytes) -> None:
    """Write all of *data* to a non-blocking socket or pipe."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await ready(fd, writable=True)
            continue
        view = view[n:]


_TFD = re.compile(rb"^tfd:\s*(\d+)", re.MULTILINE)


def epoll_watched() -> set[int]:
    """Every fd number registered in any epoll instance of this process.  A stale
    registration of a closed dup still shows: epoll keys it on the open file."""
    watched: set[int] = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/self/fdinfo/{name}", "rb") as info:
                watched.update(int(m) for m in _TFD.findall(info.read()))
        except FileNotFoundError:  # the listing's own fd, or one closed meanwhile
            continue
    return watched


def open_fds() -> int:
    """How many fds this process has open."""
    return len(os.listdir("/proc/self/fd")) - 1  # minus the listing's own


def os_threads() -> int:
    """How many threads this process runs, as the kernel counts them."""
    return len(os.listdir("/proc/self/task"))
