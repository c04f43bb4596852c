"""The "portable" backend: a read/write loop over one reused buffer.

It serves every readable/writable fd pair on every platform, and is the last method
of the "os" backend's plans too (which shares :func:`read_write`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Literal

from .. import _faults
from .._constants import AT_FD_POSITION, RW_BUFFER_MAX
from .._errors import MethodDeclined, mark_if_our_call
from .._types import Method, PlanStep
from .job import Job
from .waits import wait_readable, wait_writable

__all__ = [
    "LOOPS_IN_PYTHON", "METHODS", "NAME", "read_write", "returns_when_blocked", "run", "write_all",
]

NAME: Literal["portable"] = "portable"
METHODS = frozenset({Method.READ_WRITE})
LOOPS_IN_PYTHON = True

_HAVE_READV = hasattr(os, "readv") and hasattr(os, "preadv")


def _read_into(job: Job, view: memoryview) -> int:
    if _faults.armed:
        _faults.check("read")
    if _HAVE_READV:
        if job.src_offset == AT_FD_POSITION:
            return os.readv(job.src_fd, [view])
        return os.preadv(job.src_fd, [view], job.src_offset)
    data = (os.read(job.src_fd, len(view)) if job.src_offset == AT_FD_POSITION
            else os.pread(job.src_fd, len(view), job.src_offset))
    view[: len(data)] = data
    return len(data)


def write_all(job: Job, data: memoryview | bytes) -> None:
    """Write all of *data* to the destination, waiting when it is full.

    On any error (and on BlockingIOError in ``nowait`` mode) the bytes not written are
    left in ``job.residue``: they are what the next call writes first.
    """
    view = memoryview(data)
    sent = 0
    try:
        while sent < len(view):
            try:
                if _faults.armed:
                    _faults.check("write")
                if job.dst_offset == AT_FD_POSITION:
                    n = os.write(job.dst_fd, view[sent:])
                else:
                    n = os.pwrite(job.dst_fd, view[sent:], job.dst_offset)
            except BlockingIOError:
                if not job.dst_pollable:
                    raise
                wait_writable(job)
                continue
            sent += n
            job.delivered(n)
    except BaseException:
        job.residue = bytes(view[sent:])
        raise


def read_write(job: Job) -> None:
    """Copy through user space until the job is finished or yields."""
    if job.residue:  # resuming in nowait mode: finish the write that blocked
        pending, job.residue = job.residue, b""
        write_all(job, pending)
    buf = memoryview(bytearray(min(job.chunk_size, RW_BUFFER_MAX)))
    while job.remaining != 0:
        want = min(len(buf), job.next_chunk())
        try:
            got = _read_into(job, buf[:want])
        except BlockingIOError:
            if not job.src_pollable:
                raise
            wait_readable(job)
            continue
        if got == 0:
            job.eof = True
            return
        if job.src_offset != AT_FD_POSITION:
            job.src_offset += got
        write_all(job, buf[:got])
        if job.chunk_done():
            return


def returns_when_blocked(loop: Callable[[Job], None], job: Job) -> None:
    """Run *loop*; in ``nowait`` mode a wait unwinds as BlockingIOError with
    ``job.blocked`` set (``waits``), which ends the call here.  An OSError an ``os``
    call raised is marked as the method's; a signal handler's or the progress
    callback's own is left unmarked: the caller's (issue 11)."""
    try:
        loop(job)
    except OSError as exc:
        if isinstance(exc, BlockingIOError) and job.nowait and job.blocked:
            return
        mark_if_our_call(exc)
        raise


def run(step: PlanStep, job: Job) -> None:
    """Run *step* (only READ_WRITE here) on *job*."""
    if step.method is not Method.READ_WRITE:
        raise MethodDeclined(errno.ENOSYS, f"the portable backend has no {step.method.value}")
    returns_when_blocked(read_write, job)
