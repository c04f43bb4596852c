"""The "portable" backend: a read/write loop over one reused buffer.

It serves every readable/writable fd pair on every platform, and is the last method
of every plan in the other backends too (they share :func:`read_write`).
"""

from __future__ import annotations

import errno
import os

from . import _faults
from ._errors import MethodDeclined
from ._job import UNLIMITED, Job
from ._types import Method
from ._waits import wait_readable, wait_writable

__all__ = ["NAME", "METHODS", "RW_BUFFER_MAX", "read_write", "run", "write_all"]

NAME = "portable"
METHODS = frozenset({Method.READ_WRITE})
#: the read/write buffer: min(chunk_size, this).  Bigger buffers stop paying off
#: once they outgrow the CPU caches.
RW_BUFFER_MAX = 1 << 20

_HAVE_READV = hasattr(os, "readv") and hasattr(os, "preadv")


def _read_into(job: Job, view: memoryview) -> int:
    if _faults.armed:
        _faults.check("read")
    if _HAVE_READV:
        if job.src_offset == UNLIMITED:
            return os.readv(job.src_fd, [view])
        return os.preadv(job.src_fd, [view], job.src_offset)
    data = (os.read(job.src_fd, len(view)) if job.src_offset == UNLIMITED
            else os.pread(job.src_fd, len(view), job.src_offset))
    view[: len(data)] = data
    return len(data)


def write_all(job: Job, data: memoryview | bytes) -> None:
    """Write all of *data* to the destination, waiting when it is full.

    On any error the bytes not written are left in ``job.residue``.
    """
    view = memoryview(data)
    sent = 0
    try:
        while sent < len(view):
            try:
                if _faults.armed:
                    _faults.check("write")
                if job.dst_offset == UNLIMITED:
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
    """Copy through user space until ``remaining`` or end of file."""
    if job.residue:  # resuming after BlockingIOError in nowait mode: finish the write
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
        if job.src_offset != UNLIMITED:
            job.src_offset += got
        write_all(job, buf[:got])
        job.report()


def run(method: Method, job: Job) -> None:
    """Run *method* (only READ_WRITE here) on *job*."""
    if method is not Method.READ_WRITE:
        raise MethodDeclined(errno.ENOSYS, f"the portable backend has no {method.value}")
    read_write(job)
