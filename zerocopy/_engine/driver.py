"""The driver of one transfer: everything that is not I/O, and the blocking driver.

:class:`Driver` is shared by :class:`BlockingDriver` (``transfer()``) and the asyncio
driver (``zerocopy._aio.driver``): validation and classification, the plan, the job,
read-ahead, fallbacks, the result, the errors, and the positions promised by
docs/transfer.md ("Counts, offsets, positions"), kept on every way out:

* A seekable source is always read at explicit offsets (pread semantics), even when
  ``offset`` is None; afterwards its position is set to ``start + transferred``.  So
  bytes a method read but did not deliver (stuck in a splice pipe, or in the
  read/write buffer) are simply read again by whoever comes next: nothing is lost.
* A non-seekable source cannot be rewound: such bytes are handed back as
  ``TransferError.residue``.
* The destination is written at its own position unless ``dst_offset`` is given;
  the kernel advances it by exactly what was written.

A subclass adds only how a method runs and how a wait is done (the model is httpx's
``BaseClient`` under ``Client`` and ``AsyncClient``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from .. import _backends, _fd
from .._backends import Backend
from .._backends.job import Job
from .._backends.portable import write_all
from .._constants import DEFAULT_CHUNK_SIZE, MAX_OFFSET, MAX_SYSCALL_BYTES, NO_PIPE, UNTIL_EOF
from .._errors import (
    MethodDeclined, UnsupportedTransfer, error_from_errno, is_method_error, is_syscall_error,
    mark_if_our_call, note_interrupted, transfer_error,
)
from .._pipes import Pipe, pool
from .._types import Fallback, Method, Plan, PlanStep, TransferResult
from . import endpoints, plan
from .endpoints import Endpoint

__all__ = ["BlockingDriver", "Driver", "check_numbers", "check_offsets", "method_cannot"]

# errnos that mean "this method can't do this pair", if nothing has moved yet
# (docs/transfer.md, "Errors and fallback"; Go's handleCopyFileRangeErr).  EAGAIN
# only reaches here from a side that cannot be polled: GPFS returns it for regular
# files (python/cpython#87909).  ENODATA: Lustre (python/cpython#139416).  EOVERFLOW:
# offsets past what a filesystem supports (Rust's kernel_copy falls back on it).
_METHOD_CANNOT = frozenset({
    errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
    errno.ENOTSOCK, errno.ENODATA, errno.EAGAIN, errno.EOVERFLOW,
})
# copy_file_range also: EPERM (seccomp in containers, golang/go#40893 - never
# cached, an immutable file says the same) and EIO (CIFS, golang/go#42334).
_COPY_FILE_RANGE_CANNOT = _METHOD_CANNOT | {errno.EPERM, errno.EIO}

_D = TypeVar("_D", bound="Driver")


def check_numbers(count: int | None, offset: int | None, dst_offset: int | None,
                  timeout: float | None, chunk_size: int | None) -> None:
    """Refuse bad numbers before anything is looked at."""
    for name, value in (("count", count), ("offset", offset), ("dst_offset", dst_offset)):
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            if value > MAX_OFFSET:
                # A file offset (off_t) and a count the kernel adds to it are signed
                # 64-bit numbers: refuse here, not as an OverflowError from a call.
                raise ValueError(f"{name} must be below 2**63, got {value}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if timeout is not None and not timeout >= 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")


def check_offsets(src: Endpoint, dst: Endpoint, offset: int | None,
                  dst_offset: int | None) -> None:
    """Refuse offsets the endpoints cannot honour."""
    if offset is not None and not src.seekable:
        raise ValueError(f"offset given, but the source ({src.kind.value}) is not seekable")
    if dst_offset is not None:
        if not dst.seekable:
            raise ValueError(f"dst_offset given, but the destination ({dst.kind.value}) "
                             "is not seekable")
        if dst.append:
            raise ValueError("dst_offset given, but the destination is O_APPEND: "
                             "Linux appends whatever offset is asked (pwrite(2) BUGS)")


def method_cannot(method: Method, err: int) -> bool:
    """*err* from *method* means "this method can't do this pair" (not "the endpoint
    is broken or full": EPIPE, ECONNRESET, ENOSPC, EFBIG, EDQUOT, EBADF never are)."""
    return err in (_COPY_FILE_RANGE_CANNOT if method is Method.COPY_FILE_RANGE
                   else _METHOD_CANNOT)


def _fallback(method: Method, exc: BaseException, offset: int) -> Fallback:
    if isinstance(exc, MethodDeclined):
        return Fallback(method, exc.errno, exc.reason, offset)
    assert isinstance(exc, OSError)
    err = exc.errno or 0
    return Fallback(method, err, os.strerror(err) if err else str(exc), offset)


def _make_job(src: Endpoint, dst: Endpoint, count: int | None, offset: int | None,
              dst_offset: int | None, timeout: float | None, chunk_size: int | None,
              progress: Callable[[int], object] | None) -> Job:
    job = Job(src.fd, dst.fd, chunk_size=min(chunk_size or DEFAULT_CHUNK_SIZE,
                                             MAX_SYSCALL_BYTES))
    if src.seekable:
        job.src_offset = src.position() if offset is None else offset
    if dst_offset is not None:
        job.dst_offset = dst_offset
    if count is not None:
        job.remaining = count
    elif src.same_file(dst):
        # Copying a file into itself until EOF would read its own output forever:
        # bound it by the size at the start.
        job.remaining = max(0, src.size - job.src_offset)
    job.progress = progress
    if timeout is not None:
        job.deadline = time.monotonic() + timeout
    job.src_wait, job.dst_wait = src.wait, dst.wait
    job.src_pollable, job.dst_pollable = src.pollable, dst.pollable
    return job


class Driver:
    """One call: its backend, endpoints, plan and job, and what happened so far."""

    def __init__(self, backend: Backend, src: Endpoint, dst: Endpoint, the_plan: Plan,
                 job: Job, *, timeout_given: bool) -> None:
        self.backend = backend
        self.src = src
        self.dst = dst
        self.plan = the_plan
        self.job = job
        self.timeout_given = timeout_given
        self.src_start = job.src_offset
        self.fallbacks: list[Fallback] = []
        #: the method and error of the last fallback (for exhausted())
        self.last_failure: tuple[Method, BaseException] | None = None
        self.pipe: Pipe | None = None
        #: count=None, bounded by the size at the start (a file copied into itself):
        #: reaching the bound is the end of file the caller asked for (eof=True)
        self.until_size = False

    @classmethod
    @contextlib.contextmanager
    def opened(cls: type[_D], src: object, dst: object, count: int | None,
               offset: int | None, dst_offset: int | None, timeout: float | None,
               chunk_size: int | None, progress: Callable[[int], object] | None,
               backend: str | None, *, skip: Method | None = None) -> Iterator[_D]:
        """Validate and classify, then yield the driver; on the way out (however it is
        left) restore blocking modes and set the positions docs/transfer.md promises.

        ``OwnedFd`` endpoints are pinned first and unpinned last (docs/ownership.md):
        a close() from another thread meanwhile is deferred, and sets ``job.stop``
        so the transfer stops after the current chunk.  *skip* leaves a method out
        (it already gave up part way: the fast path's handoff)."""
        check_numbers(count, offset, dst_offset, timeout, chunk_size)
        chosen = _backends.resolve(backend)
        with _fd.pinned(src, dst) as (src, dst, pins):
            s = endpoints.source(src)
            d = endpoints.destination(dst)
            check_offsets(s, d, offset, dst_offset)
            methods = chosen.METHODS if skip is None else chosen.METHODS - {skip}
            the_plan = plan.make_plan(chosen.NAME, methods, s, d,
                                      dst_offset=dst_offset is not None)
            job = _make_job(s, d, count, offset, dst_offset, timeout, chunk_size, progress)
            if d.seekable and dst_offset is None and d.buffered is not None:
                d.set_position(d.position())
            driver = cls(chosen, s, d, the_plan, job, timeout_given=timeout is not None)
            driver.until_size = count is None and job.remaining != UNTIL_EOF
            pins.stop_on_close(job)
            unblocked = driver._unblock()
            try:
                yield driver
            finally:
                for fd in unblocked:
                    os.set_blocking(fd, True)
                if s.seekable and offset is None:
                    s.set_position(driver.src_start + job.transferred)
                if dst_offset is None:
                    d.resync()

    # -- what a subclass may change ------------------------------------------------------

    def wants_nonblocking(self) -> bool:
        """Whether pollable fds are made non-blocking for the call.  A deadline cannot
        interrupt a blocking system call, and a backend whose loops run in Python must
        not sleep in one (``Backend.LOOPS_IN_PYTHON``)."""
        return self.timeout_given or self.backend.LOOPS_IN_PYTHON

    def _unblock(self) -> list[int]:
        """Make the pollable blocking fds non-blocking when :meth:`wants_nonblocking`;
        returns the fds changed (restored by :meth:`opened`)."""
        changed: list[int] = []
        if self.wants_nonblocking():
            for end in (self.src, self.dst):
                if end.pollable and end.blocking and end.fd not in changed:
                    os.set_blocking(end.fd, False)
                    changed.append(end.fd)
        return changed

    # -- before the methods --------------------------------------------------------------

    def nothing_to_move(self) -> TransferResult | None:
        """The result when no method needs to run (count=0): no system call is made."""
        if self.job.remaining != 0:
            return None
        first = self.plan.steps[0].method if self.plan.steps else Method.READ_WRITE
        return TransferResult(0, first, self.backend.NAME, self.until_size, ())

    def take_read_ahead(self) -> bool:
        """Put what a non-seekable buffered reader already read into ``job.residue``,
        to be written before any method runs; True when there is some."""
        job = self.job
        limit = job.remaining if job.remaining != UNTIL_EOF else MAX_SYSCALL_BYTES
        job.residue = self.src.take_read_ahead(limit)
        return bool(job.residue)

    def write_pending(self) -> None:
        """Write ``job.residue`` (taken read-ahead) to the destination; on error it
        keeps what was not written.  Raises BlockingIOError in ``nowait`` mode."""
        job = self.job
        pending, job.residue = job.residue, b""
        try:
            write_all(job, pending)
        except OSError as exc:
            mark_if_our_call(exc)  # the write's own error, not a signal handler's
            raise

    def read_ahead_result(self) -> TransferResult | None:
        """The result when the read-ahead covered the whole count."""
        job = self.job
        if job.remaining != 0:
            return None
        return TransferResult(job.transferred, Method.READ_WRITE, self.backend.NAME, False, ())

    # -- the methods ---------------------------------------------------------------------

    def begin(self, step: PlanStep) -> None:
        """Get ready to run *step*: lease our splice pipe when it goes through one."""
        job = self.job
        job.blocked = 0
        if step.via_pipe and self.pipe is None:
            self.pipe = pool.acquire()
            job.pipe_r, job.pipe_w, job.pipe_size = self.pipe.r, self.pipe.w, self.pipe.size

    def settle(self, step: PlanStep) -> None:
        """The backend returned, finished or yielding: raise a stop request, or a
        decline that only the whole transfer's start can show."""
        job = self.job
        if job.stoppable and job.stop is not None:
            raise job.stop
        if step.method is Method.COPY_FILE_RANGE and job.eof and job.transferred == 0:
            # procfs and sysfs files report size 0 and copy_file_range copied nothing
            # from them before Linux 5.19 (python/cpython#81340, golang/go#44272): at
            # the very start a 0 means "cannot"; later it is the end of the file.
            job.eof = False
            raise MethodDeclined(0, "copy_file_range copied nothing at the start")

    def succeeded(self, step: PlanStep) -> TransferResult:
        """*step* finished: the result of the whole call."""
        self._return_pipe(clean=True)
        job = self.job
        eof = job.eof or (self.until_size and job.remaining == 0)
        return TransferResult(job.transferred, step.method, self.backend.NAME, eof,
                              tuple(self.fallbacks))

    def failed(self, step: PlanStep, exc: BaseException) -> None:
        """*step* raised *exc*: record a fallback when the rules allow one
        (docs/transfer.md, "Errors and fallback"), else raise what the caller sees."""
        if not self._can_fall_back(step, exc):
            raise self.failure(step.method, exc) from None
        job = self.job
        self.fallbacks.append(_fallback(step.method, exc, job.transferred))
        self.last_failure = (step.method, exc)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSYS:
            plan.note_absent(step.method)
        self._return_pipe(clean=False)
        # The next method starts at the first byte not delivered: a seekable source
        # is read there again (what sat in our pipe or buffer is simply re-read).
        if self.src.seekable:
            job.src_offset = self.src_start + job.transferred
            job.residue = b""
        job.in_pipe, job.eof = 0, False

    def _can_fall_back(self, step: PlanStep, exc: BaseException) -> bool:
        """The fallback rule (docs/transfer.md, "Errors and fallback"): a system
        call's "this method can't" before the first byte; after it, only when the
        source is seekable, so the bytes so far are known exactly and the next method
        resumes at the byte where this one stopped (nothing duplicated, nothing lost)."""
        job = self.job
        if not is_method_error(exc):
            return False  # the caller's (signal handler, progress), a wait's, a limit's
        if isinstance(exc, MethodDeclined):
            return not job.transferred
        if not (isinstance(exc, OSError) and method_cannot(step.method, exc.errno or 0)):
            return False
        if self.src.seekable:
            return True
        # A socket or pipe source: bytes it gave up cannot be read again.
        return not (job.transferred or job.residue or job.in_pipe)

    def failure(self, method: Method, exc: BaseException) -> BaseException:
        """The exception the caller sees when *method* stopped with *exc*: a
        TransferError for a system call's error, else *exc* itself with the counts."""
        job = self.job
        residue = self._residue()
        self._return_pipe(clean=False)
        if not is_syscall_error(exc):
            return note_interrupted(exc, job.transferred, residue)
        err = transfer_error(getattr(exc, "errno", 0) or 0, method, job.transferred, residue,
                             tuple(self.fallbacks))
        for note in getattr(exc, "__notes__", ()):  # e.g. why a pinned fd stopped it
            err.add_note(note)
        return err

    def exhausted(self) -> BaseException:
        """The error when every method of the plan fell back: UnsupportedTransfer
        before the first byte; after it, the last method's error with the counts."""
        if self.job.transferred and self.last_failure is not None:
            self.fallbacks.pop()  # it is the error itself, not a method before it
            return self.failure(*self.last_failure)
        return self.unsupported()

    def unsupported(self) -> UnsupportedTransfer:
        """The error when every method of the plan fell back before the first byte."""
        last = self.fallbacks[-1].errno if self.fallbacks else errno.EINVAL
        tried = "; ".join(f"{f.method.value}: {f.reason}" for f in self.fallbacks)
        err = error_from_errno(
            last, f"no method of the {self.backend.NAME!r} backend can move "
            f"{self.src.kind.value} -> {self.dst.kind.value} ({tried or 'none left'})",
            kind=UnsupportedTransfer)
        err.fallbacks = tuple(self.fallbacks)
        return err

    # -- the splice pipe -----------------------------------------------------------------

    def _return_pipe(self, clean: bool) -> None:
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            pool.release(pipe, clean=clean and self.job.in_pipe == 0)
            self.job.pipe_r = self.job.pipe_w = NO_PIPE

    def _residue(self) -> bytes:
        """Bytes consumed from a non-seekable source and not delivered."""
        job = self.job
        if self.src.seekable:
            return b""  # the source position is rewound to just after the delivered bytes
        stuck = self.pipe.drain(job.in_pipe) if self.pipe is not None and job.in_pipe else b""
        return job.residue + stuck


class BlockingDriver(Driver):
    """``transfer()``: each method runs to its end in the calling thread; waits are
    the backend's own (``poll`` with the GIL released)."""

    def run(self) -> TransferResult:
        """Deliver the read-ahead, then try the plan's steps until one finishes."""
        early = self.nothing_to_move()
        if early is not None:
            return early
        if self.take_read_ahead():
            try:
                self.write_pending()
            except BaseException as exc:
                raise self.failure(Method.READ_WRITE, exc) from None
            early = self.read_ahead_result()
            if early is not None:
                return early
        for step in self.plan.steps:
            self.begin(step)
            try:
                self.backend.run(step, self.job)
                self.settle(step)
            except BaseException as exc:
                self.failed(step, exc)
                continue
            return self.succeeded(step)
        raise self.exhausted()
