"""``atransfer()``: the asyncio driver of a transfer.

It shares :func:`zerocopy._transfer.session` with the blocking driver (validation,
plan, fallback rules, positions on every way out) and differs only in how it waits.
The job runs in ``nowait`` mode: when a socket or pipe would block, the backend
records the side in ``job.blocked`` and raises BlockingIOError, the driver waits for
that fd with ``loop.add_reader``/``loop.add_writer`` and calls the same method again,
which resumes where it stopped (bytes in our splice pipe and a half-written buffer
included).  No thread ever waits for a socket.

The driver also ends a *step* after every ``chunk_size`` bytes (the progress hook
raises :class:`_StepDone`) so one busy transfer cannot starve the loop, and so
cancellation and the deadline are noticed between chunks.  System calls on regular
files can block on the disk; ``disk="thread"`` runs each step in an executor (see
docs/async.md for the defaults).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Literal, TypeVar

from ._endpoints import Endpoint
from ._errors import MethodDeclined, timeout_error
from ._job import BLOCKED_DST, BLOCKED_SRC, MAX_SYSCALL_BYTES, UNLIMITED
from ._portable import write_all
from ._transfer import _Run, session, trivial_result
from ._types import Method, Plan, TransferResult
from ._waits import _timeout

__all__ = ["DiskMode", "atransfer"]

#: Where the system calls of an async transfer run: ``"loop"`` on the event loop's
#: thread, ``"thread"`` in an executor, ``"auto"`` picks (docs/async.md).
DiskMode = Literal["auto", "loop", "thread"]
_DISK_MODES = ("auto", "loop", "thread")

_T = TypeVar("_T")


class _StepDone(Exception):
    """Internal: raised by the progress hook to hand the event loop a turn."""


def _resolve(fut: asyncio.Future[bool], ready: bool) -> None:
    if not fut.done():
        fut.set_result(ready)


def _poll(fd: int, writable: bool, wake: int, timeout: float) -> bool:
    """Block in a worker thread until *fd* is ready, *wake* is readable, or timeout."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT if writable else select.POLLIN)
        poller.register(wake, select.POLLIN)
        ms = None if timeout == UNLIMITED else math.ceil(timeout * 1000)
        return any(ready_fd == fd for ready_fd, _ in poller.poll(ms))
    rl, wl = ([wake], [fd]) if writable else ([wake, fd], [])  # pragma: no cover - Windows
    ready = select.select(rl, wl, [], None if timeout == UNLIMITED else timeout)
    return fd in ready[0] or fd in ready[1]  # pragma: no cover


async def _settle(fut: asyncio.Future[_T]) -> None:
    """Wait until a worker thread has let go of the job, whatever else is cancelled
    meanwhile: positions are restored only after that."""
    while not fut.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([fut])
    if not fut.cancelled():
        fut.exception()  # retrieved here: the caller sees the cancellation instead


def _note_counts(exc: BaseException, transferred: int, residue: bytes) -> None:
    exc.transferred = transferred  # type: ignore[attr-defined]
    exc.residue = residue  # type: ignore[attr-defined]
    exc.add_note(f"zerocopy: {transferred} bytes delivered before the transfer stopped; "
                 f"{len(residue)} bytes handed back as .residue")


@contextlib.contextmanager
def _nonblocking(ends: tuple[Endpoint, ...]) -> Iterator[None]:
    """Make every pollable side non-blocking for the call (an event loop must never
    sit in a blocking read), and restore the ones changed."""
    changed: list[int] = []
    try:
        for end in ends:
            if end.pollable and end.fd not in changed and os.get_blocking(end.fd):
                os.set_blocking(end.fd, False)
                changed.append(end.fd)
        yield
    finally:
        for fd in changed:
            os.set_blocking(fd, True)


class _Driver:
    """One ``atransfer`` call: runs the plan's methods, waiting with the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 progress: Callable[[int], object] | None, executor: Executor | None) -> None:
        self.loop = loop
        self.progress = progress
        self.executor = executor
        self.on_loop = True
        #: set on the loop thread when cancelled; a worker thread stops at its next chunk
        self.stop = False
        self.step_start = 0
        self.reported = 0
        #: False once the loop refused add_reader/add_writer: waits go to a thread
        self.watch = True
        self.wake: tuple[socket.socket, socket.socket] | None = None

    def attach(self, run: _Run, on_loop: bool) -> None:
        """Take over *run*, whose job already calls :meth:`hook` (through the pins'
        close check that session() wraps around it)."""
        self.run = run
        self.job = run.job
        self.on_loop = on_loop
        self.job.nowait = True

    # -- the steps -------------------------------------------------------------

    def hook(self, transferred: int) -> None:
        """The job's progress callback: called by the backend after each chunk, on
        the thread that runs the step."""
        if self.on_loop and self.progress is not None:
            self.reported = transferred
            self.progress(transferred)
        if self.stop or transferred - self.step_start >= self.job.chunk_size:
            raise _StepDone

    def _report(self) -> None:
        """In thread mode, progress is reported on the loop thread after each step."""
        done = self.job.transferred
        if self.progress is not None and done != self.reported:
            self.reported = done
            self.progress(done)

    def _step_in_thread(self, method: Method) -> None:
        if self.stop:
            raise _StepDone  # cancelled before the executor got to it
        self.run.backend.run(method, self.job)

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
        self.stop = True

    async def _step(self, method: Method) -> None:
        """Run *method* until it finishes, blocks, or ends a step."""
        self.job.blocked = 0
        self.step_start = self.job.transferred
        if self.on_loop:
            self.run.backend.run(method, self.job)
        else:
            await self._in_thread(self._step_in_thread, method,
                                  interrupt=self._interrupt_step)

    async def _run_method(self, method: Method) -> None:
        job = self.job
        method_start = job.transferred
        while True:
            try:
                await self._step(method)
            except _StepDone:
                pass
            except BlockingIOError:
                if not job.blocked:
                    raise  # EAGAIN from a side that cannot be polled: a real error
                blocked = job.blocked
                if not self.on_loop:
                    self._report()
                await self._wait(blocked)
                continue
            except MethodDeclined:
                # copy_file_range "copied nothing at the start" of a resumed step is
                # end of file: the start of the method was steps ago.
                if job.transferred == method_start:
                    raise
                job.eof = True
                return
            else:
                if not self.on_loop:
                    self._report()
                return
            if not self.on_loop:
                self._report()
            if job.deadline != UNLIMITED and time.monotonic() >= job.deadline:
                raise timeout_error("transfer deadline passed")
            if self.on_loop:
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
        timeout = _timeout(per_wait, self.job.deadline, side)
        ready = await self._watch(fd, writable, timeout) if self.watch else None
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
            self.watch = False
            return None
        timer = None if timeout == UNLIMITED else loop.call_later(timeout, _resolve,
                                                                   fut, False)
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
        limit = job.remaining if job.remaining != UNLIMITED else MAX_SYSCALL_BYTES
        job.residue = self.run.src.take_read_ahead(limit)
        while job.residue:
            pending, job.residue = job.residue, b""
            job.blocked = 0
            try:
                write_all(job, pending)  # on error it leaves the unwritten bytes in residue
            except BlockingIOError:
                if not job.blocked:
                    raise
                await self._wait(job.blocked)

    async def _methods(self, the_plan: Plan) -> TransferResult:
        run = self.run
        early = trivial_result(run, the_plan) if self.job.remaining == 0 else None
        if early is not None:
            return early
        try:
            await self._deliver_read_ahead()
        except BaseException as exc:
            raise run._failure(Method.READ_WRITE, exc) from None
        if self.job.remaining == 0:
            return TransferResult(self.job.transferred, Method.READ_WRITE, run.backend.NAME,
                                  False, ())
        for method in the_plan.methods:
            run.begin(method)
            try:
                await self._run_method(method)
            except BaseException as exc:
                run.failed(method, exc)  # raises unless the rules allow a fallback
                continue
            return run.succeeded(method)
        raise run.unsupported()

    async def drive(self, the_plan: Plan) -> TransferResult:
        """Run the plan; a cancellation always carries the counts."""
        result = await self._methods(the_plan)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A cancel asked for during the last step (from the progress callback)
            # would otherwise end the task without the counts: take it here.
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError as exc:
                _note_counts(exc, result.transferred, b"")
                raise
        return result

    def close(self) -> None:
        if self.wake is not None:
            for end in self.wake:
                end.close()
            self.wake = None


def _runs_on_loop(disk: str, src: Endpoint, dst: Endpoint) -> bool:
    if disk == "auto":
        # File to file has nothing to wait for and may take seconds of disk I/O: off
        # the loop.  With a socket or pipe on one side, each step ends when that side
        # would block, like loop.sock_sendfile's os.sendfile on the loop thread.
        return src.pollable or dst.pollable
    return disk == "loop"


async def atransfer(src: object, dst: object, count: int | None = None, *,
                    offset: int | None = None, dst_offset: int | None = None,
                    timeout: float | None = None, chunk_size: int | None = None,
                    progress: Callable[[int], object] | None = None,
                    backend: str | None = None, disk: DiskMode = "auto",
                    executor: Executor | None = None) -> TransferResult:
    """The asyncio twin of :func:`zerocopy.transfer`: same parameters, result and
    errors, waiting with the running event loop; see docs/async.md."""
    if disk not in _DISK_MODES:
        raise ValueError(f"disk must be one of {', '.join(_DISK_MODES)}, got {disk!r}")
    driver = _Driver(asyncio.get_running_loop(), progress, executor)
    with session(src, dst, count, offset, dst_offset, timeout, chunk_size, driver.hook,
                 backend) as (run, the_plan), _nonblocking((run.src, run.dst)):
        driver.attach(run, _runs_on_loop(disk, run.src, run.dst))
        try:
            return await driver.drive(the_plan)
        finally:
            driver.close()
