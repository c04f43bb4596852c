"""The state one transfer hands to a backend's method loops.

A ``Job`` is the whole contract between the transfer layer and a backend: the loops
read the fds and limits from it and write back, after every system call that moved
bytes, how far they got.  Because it is always up to date, the transfer layer can
restore positions and hand back residue after any error, whichever backend ran.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

__all__ = ["BLOCKED_BOTH", "BLOCKED_DST", "BLOCKED_SRC", "MAX_SYSCALL_BYTES", "UNLIMITED", "Job"]

#: Linux moves at most MAX_RW_COUNT = INT_MAX & PAGE_MASK bytes per read/write-like
#: call (fs/read_write.c); asking for more only risks overflow on 32-bit builds.
MAX_SYSCALL_BYTES = 0x7FFFF000
#: ``remaining``, ``src_offset``, ``dst_offset``, ``deadline`` and the wait limits
#: use -1 for "none".
UNLIMITED = -1
#: values of ``Job.blocked``
BLOCKED_SRC = 1
BLOCKED_DST = 2
BLOCKED_BOTH = BLOCKED_SRC | BLOCKED_DST


class Job:
    """Mutable state of one transfer, shared by the transfer layer and a backend."""

    __slots__ = (
        "chunk_size",
        "deadline",
        "dst_fd",
        "dst_offset",
        "dst_pollable",
        "dst_wait",
        "eof",
        "in_pipe",
        "nowait",
        "blocked",
        "pipe_r",
        "pipe_size",
        "pipe_w",
        "progress",
        "remaining",
        "residue",
        "src_fd",
        "src_offset",
        "src_pollable",
        "src_wait",
        "transferred",
    )

    def __init__(self, src_fd: int, dst_fd: int, *, chunk_size: int) -> None:
        self.src_fd = src_fd
        self.dst_fd = dst_fd
        #: where to read next; -1: at (and advancing) the source fd's own position
        self.src_offset = UNLIMITED
        #: where to write next; -1: at (and advancing) the destination's position
        self.dst_offset = UNLIMITED
        #: bytes still to move; -1: until end of file
        self.remaining = UNLIMITED
        #: bytes delivered to the destination so far
        self.transferred = 0
        #: the source reported end of file
        self.eof = False
        #: bytes consumed from a non-seekable source but not delivered
        self.residue = b""
        #: most bytes per system call (and per progress report)
        self.chunk_size = chunk_size
        self.progress: Callable[[int], object] | None = None
        #: absolute time.monotonic() deadline for the whole transfer, or -1
        self.deadline = float(UNLIMITED)
        #: longest single wait for the source / destination (socket timeout), or -1
        self.src_wait = float(UNLIMITED)
        self.dst_wait = float(UNLIMITED)
        #: EAGAIN on this side means "wait with poll" (False for regular files, where
        #: EAGAIN is an error some filesystems return, python/cpython#87909)
        self.src_pollable = False
        self.dst_pollable = False
        #: our splice pipe (-1 when splicing directly) and how many bytes sit in it
        self.pipe_r = UNLIMITED
        self.pipe_w = UNLIMITED
        self.pipe_size = 0
        self.in_pipe = 0
        #: event-loop mode: on EAGAIN, record the side in ``blocked`` and raise
        #: BlockingIOError instead of waiting with poll; calling the method again
        #: resumes where it stopped (bytes in the pipe included)
        self.nowait = False
        #: which side the last BlockingIOError waits for: BLOCKED_SRC, BLOCKED_DST,
        #: or both (direct splice cannot tell which side blocked), 0 for none
        self.blocked = 0

    def next_chunk(self) -> int:
        """The byte count to ask of the next system call."""
        if self.remaining == UNLIMITED or self.remaining > self.chunk_size:
            return self.chunk_size
        return self.remaining

    def delivered(self, count: int) -> None:
        """Account *count* bytes written to the destination."""
        self.transferred += count
        if self.remaining != UNLIMITED:
            self.remaining -= count
        if self.dst_offset != UNLIMITED:
            self.dst_offset += count

    def report(self) -> None:
        """After each chunk: tell the caller's progress callback how far we are, and
        enforce the deadline even when nothing ever blocks (file to file, a fast peer)."""
        if self.progress is not None:
            self.progress(self.transferred)
        if (self.deadline != UNLIMITED and self.remaining != 0
                and time.monotonic() >= self.deadline):
            raise OSError(errno.ETIMEDOUT, "transfer deadline passed")
