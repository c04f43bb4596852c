"""The "os" backend: the native core's loops in pure Python over ``os.sendfile``,
``os.splice`` and ``os.copy_file_range``.

It is the readable reference of the native core (same plans, same accounting, same
waits) and the fallback where the core is not built.  ``os`` functions retry EINTR
themselves and run signal handlers (PEP 475).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from typing import Literal

from .. import _faults
from .._constants import AT_FD_POSITION, POLL_AGAIN_FIRST_US, POLL_AGAIN_TRIES
from .._errors import MethodDeclined
from .._types import Method, PlanStep
from . import portable
from .job import Job
from .waits import wait_both, wait_readable, wait_writable

__all__ = ["LOOPS_IN_PYTHON", "METHODS", "NAME", "run"]

NAME: Literal["os"] = "os"
LOOPS_IN_PYTHON = True


def _offset(value: int) -> int | None:
    return None if value == AT_FD_POSITION else value


def _wait_for(job: Job, on_src: bool) -> None:
    """EAGAIN: wait for the side that blocked, or re-raise when it cannot be waited on."""
    if on_src and job.src_pollable:
        wait_readable(job)
    elif not on_src and job.dst_pollable:
        wait_writable(job)
    else:
        raise


def _dst_blocked(job: Job) -> None:
    _wait_for(job, on_src=False)


def _either_blocked(job: Job) -> None:
    if job.src_pollable and job.dst_pollable:
        wait_both(job)  # a direct splice cannot tell which side blocked
    else:
        _wait_for(job, on_src=job.src_pollable)


def _one_call_per_chunk(job: Job, syscall: _faults.Syscall, call: Callable[[Job], int],
                        on_blocked: Callable[[Job], None]) -> None:
    """The loop of a method that moves each chunk src -> dst in one call."""
    while job.remaining != 0:
        try:
            if _faults.armed:
                _faults.check(syscall)
            n = call(job)
        except BlockingIOError:
            on_blocked(job)
            continue
        if n == 0:
            job.eof = True
            return
        if job.src_offset != AT_FD_POSITION:
            job.src_offset += n
        job.delivered(n)
        if job.chunk_done():
            return


def sendfile(job: Job) -> None:
    """sendfile(2) from a regular file to any fd."""
    _one_call_per_chunk(job, "sendfile", lambda j: os.sendfile(
        j.dst_fd, j.src_fd, _offset(j.src_offset), j.next_chunk()), _dst_blocked)


def copy_file_range(job: Job) -> None:
    """copy_file_range(2) between regular files."""
    _one_call_per_chunk(job, "copy_file_range", lambda j: os.copy_file_range(
        j.src_fd, j.dst_fd, j.next_chunk(), _offset(j.src_offset), _offset(j.dst_offset)),
        _dst_blocked)


def splice_direct(job: Job) -> None:
    """splice(2) when one side is a pipe."""
    _one_call_per_chunk(job, "splice", lambda j: os.splice(
        j.src_fd, j.dst_fd, j.next_chunk(), _offset(j.src_offset), _offset(j.dst_offset),
        os.SPLICE_F_MOVE), _either_blocked)


def _fill_pipe(job: Job) -> bool:
    """One splice into our (empty) pipe; False at end of file."""
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    while True:
        try:
            if _faults.armed:
                _faults.check("splice")
            n = os.splice(job.src_fd, job.pipe_w, min(job.next_chunk(), job.pipe_size),
                          _offset(job.src_offset), None, flags)
        except BlockingIOError:
            _wait_for(job, on_src=True)
            continue
        if n == 0:
            return False
        if job.src_offset != AT_FD_POSITION:
            job.src_offset += n
        job.in_pipe = n
        return True


def _drain_pipe(job: Job) -> None:
    """Splice everything in our pipe to the destination."""
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    again = 0
    while job.in_pipe > 0:
        try:
            if _faults.armed:
                _faults.check("splice")
            n = os.splice(job.pipe_r, job.dst_fd, job.in_pipe, None,
                          _offset(job.dst_offset), flags)
        except BlockingIOError:
            if not job.dst_pollable and again < POLL_AGAIN_TRIES:
                # EAGAIN from the pipe -> file leg is about our pipe, which holds
                # bytes: transient, retried after a short growing sleep (the core's
                # _pipe_leg_again; issue 11).
                time.sleep(POLL_AGAIN_FIRST_US * (1 << again) / 1e6)
                again += 1
                continue
            _wait_for(job, on_src=False)
            continue
        again = 0
        job.in_pipe -= n
        job.delivered(n)


def splice_via_pipe(job: Job) -> None:
    """splice(2) between two non-pipes, through ``job``'s pipe.  The pipe is empty
    whenever it is filled, so each EAGAIN names one side (see the core)."""
    while job.remaining != 0:
        if job.in_pipe == 0 and not _fill_pipe(job):
            job.eof = True
            return
        _drain_pipe(job)
        if job.chunk_done():
            return


# (method, via our pipe) -> loop
_LOOPS: dict[tuple[Method, bool], Callable[[Job], None]] = {
    (Method.READ_WRITE, False): portable.read_write,
}
if hasattr(os, "sendfile"):
    _LOOPS[Method.SENDFILE, False] = sendfile
if hasattr(os, "splice"):
    _LOOPS[Method.SPLICE, False] = splice_direct
    _LOOPS[Method.SPLICE, True] = splice_via_pipe
if hasattr(os, "copy_file_range"):
    _LOOPS[Method.COPY_FILE_RANGE, False] = copy_file_range

METHODS = frozenset(method for method, _ in _LOOPS)


def run(step: PlanStep, job: Job) -> None:
    """Run *step* on *job*."""
    loop = _LOOPS.get((step.method, step.via_pipe))
    if loop is None:
        raise MethodDeclined(errno.ENOSYS, f"os has no {step.method.value} here")
    portable.returns_when_blocked(loop, job)
