"""``atransfer()``: the asyncio driver of a transfer.

It is :class:`zerocopy._engine.driver.Driver` (validation, plan, read-ahead, fallback
rules, result, errors, positions on every way out) with two things changed: how a
method runs and how a wait is done.  The job runs in ``nowait`` mode: when a socket
or pipe would block, the backend records the side in ``job.blocked`` and returns; the
driver waits for that fd with ``loop.add_reader``/``loop.add_writer`` and runs the
same method again, which resumes where it stopped (bytes in our splice pipe and a
half-written buffer included).  No thread ever waits for a socket.

Each *step* is also bounded by a byte budget (``job.pause_at``, one ``chunk_size``) so
one busy transfer cannot starve the loop, and so cancellation and the deadline are
noticed between chunks.  System calls on regular files can block on the disk;
``disk="thread"`` runs each step in an executor (docs/async.md has the defaults).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import select
import socket
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Literal, TypeVar

from .. import _faults
from .._backends import BackendName
from .._backends.job import BLOCKED_DST, BLOCKED_SRC
from .._backends.waits import retry_poll_again, time_left
from .._constants import NO_LIMIT
from .._engine.driver import Driver
from .._errors import note_interrupted, timeout_error
from .._types import Method, PlanStep, TransferResult

__all__ = ["AsyncDriver", "DiskMode", "atransfer"]

#: Where the system calls of an async transfer run: ``"loop"`` on the event loop's
#: thread, ``"thread"`` in an executor, ``"auto"`` picks (docs/async.md).
DiskMode = Literal["auto", "loop", "thread"]
_DISK_MODES = ("auto", "loop", "thread")

_T = TypeVar("_T")


def _resolve(fut: asyncio.Future[bool], ready: bool) -> None:
    if not fut.done():
        fut.set_result(ready)


def _poll(fd: int, writable: bool, wake: int, timeout: float) -> bool:
    """Block in a worker thread until *fd* is ready, *wake* is readable, or timeout;
    poll's own EAGAIN is retried as in the blocking waits."""
    return retry_poll_again(lambda: _poll_once(fd, writable, wake, timeout))


def _poll_once(fd: int, writable: bool, wake: int, timeout: float) -> bool:
    if _faults.armed:
        _faults.check("poll")
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT if writable else select.POLLIN)
        poller.register(wake, select.POLLIN)
        ms = None if timeout == NO_LIMIT else math.ceil(timeout * 1000)
        return any(ready_fd == fd for ready_fd, _ in poller.poll(ms))
    rl, wl = ([wake], [fd]) if writable else ([wake, fd], [])  # pragma: no cover - Windows
    ready = select.select(rl, wl, [], None if timeout == NO_LIMIT else timeout)
    return fd in ready[0] or fd in ready[1]  # pragma: no cover


async def _settle(fut: asyncio.Future[_T]) -> None:
    """Wait until a worker thread has let go of the job, whatever else is cancelled
    meanwhile: positions are restored only after that."""
    while not fut.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([fut])
    if not fut.cancelled():
        fut.exception()  # retrieved here: the caller sees the cancellation instead


class AsyncDriver(Driver):
    """One ``atransfer`` call: runs the plan's methods in steps, waiting with the
    event loop."""

    loop: asyncio.AbstractEventLoop
    executor: Executor | None
    #: the steps run on the loop's thread (else in the executor)
    on_loop: bool
    #: thread mode: the caller's progress callback, called on the loop between steps
    loop_progress: Callable[[int], object] | None
    reported: int
    #: False once the loop refused add_reader/add_writer: waits go to a thread
    can_watch: bool
    wake: tuple[socket.socket, socket.socket] | None

    def wants_nonblocking(self) -> bool:
        """Always: an event loop must never sit in a blocking system call."""
        return True

    def attach(self, loop: asyncio.AbstractEventLoop, executor: Executor | None,
               disk: DiskMode) -> None:
        """Set the job up for steps on *loop* (or in *executor*, by *disk*)."""
        self.loop, self.executor = loop, executor
        self.on_loop = _runs_on_loop(disk, self)
        self.can_watch, self.wake, self.reported = True, None, 0
        job = self.job
        job.nowait = True
        job.stoppable = True  # a cancel in thread mode stops the worker after its chunk
        self.loop_progress = None
        if not self.on_loop:
            self.loop_progress, job.progress = job.progress, None

    # -- the steps -------------------------------------------------------------

    def _report(self) -> None:
        """In thread mode, progress is reported on the loop thread after each step."""
        done = self.job.transferred
        if self.loop_progress is not None and done != self.reported:
            self.reported = done
            self.loop_progress(done)

    def _step_in_thread(self, step: PlanStep) -> None:
        if self.job.stop is None:  # not cancelled before the executor got to it
            self.backend.run(step, self.job)

    async def _in_thread(self, fn: Callable[..., _T], *args: object,
                         interrupt: Callable[[], object]) -> _T:
        fut = self.loop.run_in_executor(self.executor, fn, *args)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError as exc:
            interrupt()
            await _settle(fut)
            raise exc

    def _interrupt_step(self) -> None:
        if self.job.stop is None:
            self.job.stop = asyncio.CancelledError()  # the worker yields; never raised

    async def _step(self, step: PlanStep) -> None:
        """Run *step* until it finishes, blocks, or spends its byte budget."""
        job = self.job
        job.blocked = 0
        job.pause_at = job.transferred + job.chunk_size
        if self.on_loop:
            self.backend.run(step, job)
        else:
            await self._in_thread(self._step_in_thread, step, interrupt=self._interrupt_step)
            self._report()

    async def run_step_by_step(self, step: PlanStep) -> None:
        """Run *step* to its end, a step at a time, handing the loop a turn between."""
        job = self.job
        while True:
            await self._step(step)
            self.settle(step)
            if job.finished:
                return
            if job.blocked:
                await self._wait(job.blocked)
            elif self.on_loop:
                await asyncio.sleep(0)  # let the other tasks run

    # -- the waits -------------------------------------------------------------

    async def _wait(self, blocked: int) -> None:
        """Wait for the side(s) the backend blocked on; a direct splice between two
        pollable fds cannot tell which, so wait for both in turn."""
        job = self.job
        if blocked & BLOCKED_SRC:
            await self._wait_fd(job.src_fd, False, job.src_wait, "src")
        if blocked & BLOCKED_DST:
            await self._wait_fd(job.dst_fd, True, job.dst_wait, "dst")

    async def _wait_fd(self, fd: int, writable: bool, per_wait: float, side: str) -> None:
        timeout = time_left(per_wait, self.job.deadline, side)
        ready = await self._watch(fd, writable, timeout) if self.can_watch else None
        if ready is None:
            ready = await self._poll_in_thread(fd, writable, timeout)
        if not ready:
            raise timeout_error(f"{side}: timed out waiting to "
                                f"{'write' if writable else 'read'}")

    async def _watch(self, fd: int, writable: bool, timeout: float) -> bool | None:
        """Wait with the event loop; None when this loop cannot watch fds."""
        loop = self.loop
        add, remove = ((loop.add_writer, loop.remove_writer) if writable
                       else (loop.add_reader, loop.remove_reader))
        fut: asyncio.Future[bool] = loop.create_future()
        try:
            add(fd, _resolve, fut, True)
        except (NotImplementedError, PermissionError):
            # Proactor loops have no add_reader; epoll refuses fds it cannot poll.
            self.can_watch = False
            return None
        timer = None if timeout == NO_LIMIT else loop.call_later(timeout, _resolve, fut,
                                                                  False)
        try:
            return await fut
        finally:
            remove(fd)
            if timer is not None:
                timer.cancel()

    async def _poll_in_thread(self, fd: int, writable: bool, timeout: float) -> bool:
        """The documented fallback for loops that cannot watch fds: one poll() in the
        executor per wait, woken through a socketpair when cancelled."""
        if self.wake is None:
            self.wake = socket.socketpair()
            for end in self.wake:
                end.setblocking(False)
        wake_r, wake_w = self.wake
        return await self._in_thread(_poll, fd, writable, wake_r.fileno(), timeout,
                                     interrupt=lambda: wake_w.send(b"\0"))

    # -- the whole call --------------------------------------------------------

    async def _deliver_read_ahead(self) -> None:
        """A non-blocking buffered reader's read-ahead goes first (as in transfer()),
        written without blocking the loop; while waiting it sits in ``job.residue``."""
        job = self.job
        while job.residue:
            job.blocked = 0
            try:
                self.write_pending()
            except BlockingIOError:
                if not job.blocked:
                    raise
                await self._wait(job.blocked)

    async def _run_plan(self) -> TransferResult:
        early = self.nothing_to_move()
        if early is not None:
            return early
        if self.take_read_ahead():
            try:
                await self._deliver_read_ahead()
            except BaseException as exc:
                raise self.failure(Method.READ_WRITE, exc) from None
            early = self.read_ahead_result()
            if early is not None:
                return early
        for step in self.plan.steps:
            self.begin(step)
            try:
                await self.run_step_by_step(step)
            except BaseException as exc:
                self.failed(step, exc)  # raises unless the rules allow a fallback
                continue
            return self.succeeded(step)
        raise self.exhausted()

    async def drive(self) -> TransferResult:
        """Run the plan; a cancellation always carries the counts."""
        try:
            result = await self._run_plan()
        finally:
            self._close_wake()
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A cancel asked for during the last step (from the progress callback)
            # would otherwise end the task without the counts: take it here.
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError as exc:
                raise note_interrupted(exc, result.transferred, b"") from None
        return result

    def _close_wake(self) -> None:
        if self.wake is not None:
            for end in self.wake:
                end.close()
            self.wake = None


def _runs_on_loop(disk: DiskMode, driver: Driver) -> bool:
    if disk == "auto":
        # File to file has nothing to wait for and may take seconds of disk I/O: off
        # the loop.  With a socket or pipe on one side, each step ends when that side
        # would block, like loop.sock_sendfile's os.sendfile on the loop thread.
        return driver.src.pollable or driver.dst.pollable
    return disk == "loop"


async def atransfer(src: object, dst: object, count: int | None = None, *,
                    offset: int | None = None, dst_offset: int | None = None,
                    timeout: float | None = None, chunk_size: int | None = None,
                    progress: Callable[[int], object] | None = None,
                    backend: BackendName | None = None, disk: DiskMode = "auto",
                    executor: Executor | None = None) -> TransferResult:
    """The asyncio twin of :func:`zerocopy.transfer`: move bytes from *src* to *dst*,
    waiting with the running event loop instead of blocking the thread.

    Arguments, result and errors are those of :func:`zerocopy.transfer` (positions,
    residue and fallbacks included), plus:

    :param disk: where the system calls run.  ``"loop"``: on the loop's thread, a
        step (at most *chunk_size* bytes) at a time; ``"thread"``: each step in
        *executor* (so a slow disk cannot stall the loop); ``"auto"`` (default):
        ``"loop"`` when a socket or pipe is on one side (its waits are the loop's),
        ``"thread"`` for file to file.
    :param executor: the executor of thread mode (default: the loop's).
    :param progress: called on the loop's thread with the bytes delivered so far,
        after each step.

    Cancelling the task stops the transfer after the chunk in flight (in thread mode,
    once the worker lets go); the ``CancelledError`` carries ``.transferred`` and
    ``.residue`` (see :class:`zerocopy.Interrupted`) and the positions are set as
    for any other error.  Raises ValueError for an unknown *disk*.
    """
    if disk not in _DISK_MODES:
        raise ValueError(f"disk must be one of {', '.join(_DISK_MODES)}, got {disk!r}")
    loop = asyncio.get_running_loop()
    with AsyncDriver.opened(src, dst, count, offset, dst_offset, timeout, chunk_size,
                            progress, backend) as driver:
        driver.attach(loop, executor, disk)
        return await driver.drive()
