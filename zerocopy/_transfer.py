"""``transfer()`` and ``plan()``: validate, classify, plan, run with fallback, and
leave every position exactly where SPEC section 4 says, whatever happens.

Position rules, kept on every way out:

* A seekable source is always read at explicit offsets (pread semantics), even when
  ``offset`` is None; afterwards its position is set to ``start + transferred``.  So
  bytes a method read but did not deliver (stuck in a splice pipe, or in the
  read/write buffer) are simply read again by whoever comes next: nothing is lost.
* A non-seekable source cannot be rewound: such bytes are handed back as
  ``TransferError.residue``.
* The destination is written at its own position unless ``dst_offset`` is given;
  the kernel advances it by exactly what was written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator

from . import _backend, _endpoints, _fd, _plan
from ._backend import Backend
from ._endpoints import Endpoint
from ._fastpath import try_fast
from ._errors import MethodDeclined, UnsupportedTransfer, error_from_errno, transfer_error
from ._job import MAX_SYSCALL_BYTES, UNLIMITED, Job
from ._pipes import Pipe, pool
from ._portable import write_all
from ._types import EndpointKind, Fallback, Method, Plan, TransferResult

__all__ = ["DEFAULT_CHUNK_SIZE", "plan", "transfer"]

#: Bytes per system call and per progress report: large enough that syscall overhead
#: is noise, small enough that progress and Ctrl-C stay prompt.
DEFAULT_CHUNK_SIZE = 8 << 20

# errnos that mean "this method can't do this pair", if nothing has moved yet
# (SPEC section 5; python-anchors.md 2.7; Go's handleCopyFileRangeErr).  EAGAIN only
# reaches here from a side that cannot be polled: GPFS returns it for regular files
# (python/cpython#87909).  ENODATA: Lustre (python/cpython#139416).  EOVERFLOW:
# offsets past what a filesystem supports (Rust's kernel_copy falls back on it).
_CANT = frozenset({
    errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
    errno.ENOTSOCK, errno.ENODATA, errno.EAGAIN, errno.EOVERFLOW,
})
# copy_file_range only: EPERM (seccomp in containers, golang/go#40893 - never
# cached, an immutable file says the same) and EIO (CIFS, golang/go#42334).
_CANT_CFR = _CANT | {errno.EPERM, errno.EIO}

# Backends whose system calls are made from Python bytecode.  CPython runs a pending
# signal handler as soon as a call returns, before the caller stores the result: a
# blocking write that a signal cuts short after moving bytes (a full socket) would
# lose its count when the handler raises (Ctrl-C).  For these backends pollable fds
# are made non-blocking for the call, as for a deadline, so that the sleeping is done
# in poll, which moves nothing.  (A signal that lands during a call that does not
# sleep can still cost that one call's count; the native core checks for signals
# after it has counted, so it has no such window.)
_PYTHON_LOOPS = frozenset({"os", "portable"})


def _check_numbers(count: int | None, offset: int | None, dst_offset: int | None,
                   timeout: float | None, chunk_size: int | None) -> None:
    for name, value in (("count", count), ("offset", offset), ("dst_offset", dst_offset)):
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if timeout is not None and not timeout >= 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")


def _check_offsets(src: Endpoint, dst: Endpoint, offset: int | None,
                   dst_offset: int | None) -> None:
    if offset is not None and not src.seekable:
        raise ValueError(f"offset given, but the source ({src.kind.value}) is not seekable")
    if dst_offset is not None:
        if not dst.seekable:
            raise ValueError(f"dst_offset given, but the destination ({dst.kind.value}) "
                             "is not seekable")
        if dst.append:
            raise ValueError("dst_offset given, but the destination is O_APPEND: "
                             "Linux appends whatever offset is asked (pwrite(2) BUGS)")


def plan(src: object, dst: object, *, offset: int | None = None,
         dst_offset: int | None = None, backend: str | None = None) -> Plan:
    """The methods :func:`transfer` would try for *src* → *dst*, in order, and why,
    without moving a byte (nothing is flushed or re-positioned either).  Refuses what
    transfer would refuse for these arguments."""
    _check_numbers(None, offset, dst_offset, None, None)
    chosen = _backend.resolve(backend)
    with _fd.pinned(src, dst) as (src, dst, _):
        s = _endpoints._classify(src, "src", want_write=False)
        d = _endpoints._classify(dst, "dst", want_write=True)
    _check_offsets(s, d, offset, dst_offset)
    return _plan.make_plan(chosen.NAME, chosen.METHODS, s, d,
                           dst_offset=dst_offset is not None)


def _can_fall_back(method: Method, exc: BaseException, job: Job, src: Endpoint) -> bool:
    if isinstance(exc, MethodDeclined):
        return not job.transferred  # declining after progress would duplicate bytes
    if not isinstance(exc, OSError) or job.transferred or job.residue:
        return False
    if job.in_pipe and not src.seekable:
        return False  # bytes were consumed from a socket: they must be handed back
    return exc.errno in (_CANT_CFR if method is Method.COPY_FILE_RANGE else _CANT)


def _fallback(method: Method, exc: BaseException) -> Fallback:
    if isinstance(exc, MethodDeclined):
        return Fallback(method, exc.errno, exc.reason)
    assert isinstance(exc, OSError)
    err = exc.errno or 0
    return Fallback(method, err, os.strerror(err) if err else str(exc))


class _Run:
    """One call of transfer(): the job, its endpoints and what happened so far."""

    def __init__(self, backend: Backend, src: Endpoint, dst: Endpoint, job: Job) -> None:
        self.backend = backend
        self.src = src
        self.dst = dst
        self.job = job
        self.src_start = job.src_offset
        self.fallbacks: list[Fallback] = []
        self.pipe: Pipe | None = None
        #: count=None, bounded by the size at the start (a file copied into itself):
        #: reaching the bound is the end of file the caller asked for (eof=True)
        self.until_size = False

    def _lease_pipe(self, method: Method) -> None:
        needs_pipe = (method is Method.SPLICE and self.src.kind is not EndpointKind.PIPE
                      and self.dst.kind is not EndpointKind.PIPE)
        if needs_pipe and self.pipe is None:
            self.pipe = pool.acquire()
            self.job.pipe_r, self.job.pipe_w = self.pipe.r, self.pipe.w
            self.job.pipe_size = self.pipe.size

    def _return_pipe(self, clean: bool) -> None:
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            pool.release(pipe, clean=clean and self.job.in_pipe == 0)
            self.job.pipe_r = self.job.pipe_w = UNLIMITED

    def _reset_for_next_method(self) -> None:
        self.job.src_offset = self.src_start
        self.job.in_pipe = 0
        self.job.eof = False

    def _residue(self) -> bytes:
        """Bytes consumed from a non-seekable source and not delivered."""
        job = self.job
        if self.src.seekable:
            return b""  # the source position is rewound to just after the delivered bytes
        stuck = self.pipe.drain(job.in_pipe) if self.pipe is not None and job.in_pipe else b""
        return job.residue + stuck

    def begin(self, method: Method) -> None:
        """Get ready to run *method* (lease our splice pipe when it needs one)."""
        self.job.blocked = 0
        self._lease_pipe(method)

    def succeeded(self, method: Method) -> TransferResult:
        """*method* finished: the result of the whole call."""
        self._return_pipe(clean=True)
        eof = self.job.eof or (self.until_size and self.job.remaining == 0)
        return TransferResult(self.job.transferred, method, self.backend.NAME,
                              eof, tuple(self.fallbacks))

    def failed(self, method: Method, exc: BaseException) -> None:
        """*method* raised *exc*: record a fallback when the rules allow one (SPEC
        section 5), else raise the error the caller should see."""
        if not _can_fall_back(method, exc, self.job, self.src):
            raise self._failure(method, exc) from None
        self.fallbacks.append(_fallback(method, exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSYS:
            _plan.note_absent(method)
        self._return_pipe(clean=False)
        self._reset_for_next_method()

    def run(self, steps: tuple[Method, ...]) -> TransferResult:
        """Try *steps* in order until one finishes (the blocking driver)."""
        for method in steps:
            self.begin(method)
            try:
                self.backend.run(method, self.job)
            except BaseException as exc:
                self.failed(method, exc)
                continue
            return self.succeeded(method)
        raise self.unsupported()

    def _failure(self, method: Method, exc: BaseException) -> BaseException:
        job = self.job
        residue = self._residue()
        self._return_pipe(clean=False)
        if not isinstance(exc, OSError) or exc.errno is None:
            # KeyboardInterrupt from a signal handler, or the progress callback's own
            # error: re-raised as it is, with the counts attached so nothing is lost.
            # (A system call's OSError always has an errno; a handler's ``raise
            # TimeoutError()`` has none and must stay a TimeoutError.)
            exc.transferred = job.transferred  # type: ignore[attr-defined]
            exc.residue = residue  # type: ignore[attr-defined]
            exc.add_note(f"zerocopy: {job.transferred} bytes delivered before the "
                         f"transfer stopped; {len(residue)} bytes handed back as .residue")
            return exc
        err = transfer_error(exc.errno or 0, method, job.transferred, residue,
                             tuple(self.fallbacks))
        for note in getattr(exc, "__notes__", ()):  # e.g. why a pinned fd stopped it
            err.add_note(note)
        return err

    def unsupported(self) -> UnsupportedTransfer:
        """The error when every method of the plan fell back."""
        last = self.fallbacks[-1].errno if self.fallbacks else errno.EINVAL
        tried = "; ".join(f"{f.method.value}: {f.reason}" for f in self.fallbacks)
        err = error_from_errno(
            last, f"no method of the {self.backend.NAME!r} backend can move "
            f"{self.src.kind.value} -> {self.dst.kind.value} ({tried or 'none left'})",
            kind=UnsupportedTransfer)
        err.fallbacks = tuple(self.fallbacks)
        return err


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
    elif src.identity == dst.identity and src.kind is EndpointKind.FILE:
        # Copying a file into itself until EOF would read its own output forever:
        # bound it by the size at the start.
        job.remaining = max(0, src.size - job.src_offset)
    job.progress = progress
    if timeout is not None:
        job.deadline = time.monotonic() + timeout
    job.src_wait, job.dst_wait = src.wait, dst.wait
    job.src_pollable, job.dst_pollable = src.pollable, dst.pollable
    return job


def _deliver_read_ahead(run: _Run) -> None:
    job = run.job
    limit = job.remaining if job.remaining != UNLIMITED else MAX_SYSCALL_BYTES
    data = run.src.take_read_ahead(limit)
    if not data:
        return
    try:
        write_all(job, data)
    except BaseException as exc:
        raise run._failure(Method.READ_WRITE, exc) from None


def _nonblocking_for_deadline(ends: tuple[Endpoint, ...]) -> list[int]:
    """A deadline cannot interrupt a blocking syscall, so pollable blocking fds are
    made non-blocking for the call (and restored after).  Returns the fds changed."""
    changed = []
    for end in ends:
        if end.pollable and end.blocking and end.fd not in changed:
            os.set_blocking(end.fd, False)
            changed.append(end.fd)
    return changed


@contextlib.contextmanager
def session(src: object, dst: object, count: int | None, offset: int | None,
            dst_offset: int | None, timeout: float | None, chunk_size: int | None,
            progress: Callable[[int], object] | None,
            backend: str | None) -> Iterator[tuple[_Run, Plan]]:
    """Validate and classify, then yield the run and its plan; on the way out (however
    it is left) restore blocking modes and set the positions SPEC section 4 promises.
    Shared by the blocking and the asyncio drivers.

    ``OwnedFd`` endpoints are pinned first and unpinned last (SPEC section 6): a
    close() from another thread meanwhile is deferred, and stops the run after the
    current chunk (``_fd.Pins.watch``)."""
    with _fd.pinned(src, dst) as (src, dst, pins):
        with _session(src, dst, count, offset, dst_offset, timeout, chunk_size,
                      pins.watch(progress), backend) as run_and_plan:
            yield run_and_plan


@contextlib.contextmanager
def _session(src: object, dst: object, count: int | None, offset: int | None,
             dst_offset: int | None, timeout: float | None, chunk_size: int | None,
             progress: Callable[[int], object] | None,
             backend: str | None) -> Iterator[tuple[_Run, Plan]]:
    _check_numbers(count, offset, dst_offset, timeout, chunk_size)
    chosen = _backend.resolve(backend)
    s = _endpoints.source(src)
    d = _endpoints.destination(dst)
    _check_offsets(s, d, offset, dst_offset)
    the_plan = _plan.make_plan(chosen.NAME, chosen.METHODS, s, d,
                               dst_offset=dst_offset is not None)
    job = _make_job(s, d, count, offset, dst_offset, timeout, chunk_size, progress)
    if d.seekable and dst_offset is None and d.buffered is not None:
        d.set_position(d.position())
    run = _Run(chosen, s, d, job)
    run.until_size = count is None and job.remaining != UNLIMITED
    restore_blocking = (_nonblocking_for_deadline((s, d))
                        if timeout is not None or chosen.NAME in _PYTHON_LOOPS else [])
    try:
        yield run, the_plan
    finally:
        for fd in restore_blocking:
            os.set_blocking(fd, True)
        if s.seekable and offset is None:
            s.set_position(run.src_start + job.transferred)
        if dst_offset is None:
            d.resync()


def trivial_result(run: _Run, the_plan: Plan) -> TransferResult | None:
    """The result when no method needs to run (count=0, or the read-ahead of a
    buffered reader covered it); delivers that read-ahead first."""
    job = run.job
    if job.remaining == 0:
        first = the_plan.steps[0].method if the_plan.steps else Method.READ_WRITE
        return TransferResult(0, first, run.backend.NAME, run.until_size, ())
    _deliver_read_ahead(run)
    if job.remaining == 0:
        return TransferResult(job.transferred, Method.READ_WRITE, run.backend.NAME, False, ())
    return None


def transfer(src: object, dst: object, count: int | None = None, *,
             offset: int | None = None, dst_offset: int | None = None,
             timeout: float | None = None, chunk_size: int | None = None,
             progress: Callable[[int], object] | None = None,
             backend: str | None = None) -> TransferResult:
    """Move up to *count* bytes (all, until end of file, when None) from *src* to *dst*
    with the best method the kernel offers for the pair; see the package docs."""
    if timeout is None and progress is None and chunk_size is None and backend is None:
        fast = try_fast(src, dst, count, offset, dst_offset)
        if fast is not None:
            return fast
    with session(src, dst, count, offset, dst_offset, timeout, chunk_size, progress,
                 backend) as (run, the_plan):
        return trivial_result(run, the_plan) or run.run(the_plan.methods)
