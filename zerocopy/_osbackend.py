"""The "os" backend: the native core's loops in pure Python over ``os.sendfile``,
``os.splice`` and ``os.copy_file_range``.

It is the readable reference of the native core (same plans, same accounting, same
waits) and the fallback where the core is not built.  ``os`` functions retry EINTR
themselves and run signal handlers (PEP 475).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from . import _faults, _portable
from ._errors import MethodDeclined
from ._job import UNLIMITED, Job
from ._types import Method
from ._waits import wait_both, wait_readable, wait_writable

__all__ = ["NAME", "METHODS", "run"]

NAME = "os"


def _offset(value: int) -> int | None:
    return None if value == UNLIMITED else value


def _retry_blocked(job: Job, on_src: bool) -> None:
    """EAGAIN: wait for the side that blocked, or re-raise when it cannot be waited on."""
    if on_src and job.src_pollable:
        wait_readable(job)
    elif not on_src and job.dst_pollable:
        wait_writable(job)
    else:
        raise


def _dst_blocked(job: Job) -> None:
    _retry_blocked(job, on_src=False)


def _either_blocked(job: Job) -> None:
    if job.src_pollable and job.dst_pollable:
        wait_both(job)  # a direct splice cannot tell which side blocked
    else:
        _retry_blocked(job, on_src=job.src_pollable)


def _one_call_per_chunk(job: Job, syscall: _faults.Syscall, call: Callable[[Job], int],
                        on_blocked: Callable[[Job], None], declines_at_start: bool = False) -> None:
    """The loop of a method that moves each chunk src -> dst in one call, until
    ``remaining`` or end of file.  ``declines_at_start``: a 0 before any byte moved
    means "cannot" (copy_file_range on procfs, see the core), not end of file."""
    while job.remaining != 0:
        try:
            if _faults.armed:
                _faults.check(syscall)
            n = call(job)
        except BlockingIOError:
            on_blocked(job)
            continue
        if n == 0:
            if declines_at_start and job.transferred == 0:
                raise MethodDeclined(0, f"{syscall} copied nothing at the start")
            job.eof = True
            return
        if job.src_offset != UNLIMITED:
            job.src_offset += n
        job.delivered(n)
        job.report()


def sendfile(job: Job) -> None:
    """sendfile(2) from a regular file to any fd."""
    _one_call_per_chunk(job, "sendfile", lambda j: os.sendfile(
        j.dst_fd, j.src_fd, _offset(j.src_offset), j.next_chunk()), _dst_blocked)


def copy_file_range(job: Job) -> None:
    """copy_file_range(2) between regular files."""
    _one_call_per_chunk(job, "copy_file_range", lambda j: os.copy_file_range(
        j.src_fd, j.dst_fd, j.next_chunk(), _offset(j.src_offset), _offset(j.dst_offset)),
        _dst_blocked, declines_at_start=True)


def _splice_direct(job: Job) -> None:
    _one_call_per_chunk(job, "splice", lambda j: os.splice(
        j.src_fd, j.dst_fd, j.next_chunk(), _offset(j.src_offset), _offset(j.dst_offset),
        os.SPLICE_F_MOVE), _either_blocked)


def _splice_via_pipe(job: Job) -> None:
    # The pipe is empty whenever we fill it, so each EAGAIN names one side (see the core).
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    while job.remaining != 0:
        if job.in_pipe == 0:
            try:
                if _faults.armed:
                    _faults.check("splice")
                n = os.splice(job.src_fd, job.pipe_w, min(job.next_chunk(), job.pipe_size),
                              _offset(job.src_offset), None, flags)
            except BlockingIOError:
                _retry_blocked(job, on_src=True)
                continue
            if n == 0:
                job.eof = True
                return
            if job.src_offset != UNLIMITED:
                job.src_offset += n
            job.in_pipe = n
        while job.in_pipe > 0:
            try:
                if _faults.armed:
                    _faults.check("splice")
                n = os.splice(job.pipe_r, job.dst_fd, job.in_pipe, None,
                              _offset(job.dst_offset), flags)
            except BlockingIOError:
                _retry_blocked(job, on_src=False)
                continue
            job.in_pipe -= n
            job.delivered(n)
        job.report()


def splice(job: Job) -> None:
    """splice(2): directly when one side is a pipe, else through ``job``'s pipe."""
    if job.pipe_w == UNLIMITED:
        _splice_direct(job)
    else:
        _splice_via_pipe(job)


_LOOPS: dict[Method, Callable[[Job], None]] = {Method.READ_WRITE: _portable.read_write}
if hasattr(os, "sendfile"):
    _LOOPS[Method.SENDFILE] = sendfile
if hasattr(os, "splice"):
    _LOOPS[Method.SPLICE] = splice
if hasattr(os, "copy_file_range"):
    _LOOPS[Method.COPY_FILE_RANGE] = copy_file_range

METHODS = frozenset(_LOOPS)


def run(method: Method, job: Job) -> None:
    """Run *method* on *job*."""
    loop = _LOOPS.get(method)
    if loop is None:
        raise MethodDeclined(errno.ENOSYS, f"os has no {method.value} here")
    loop(job)
