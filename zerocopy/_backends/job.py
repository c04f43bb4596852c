"""The state one transfer hands to a backend's method loops.

A ``Job`` is the whole contract between the driver and a backend.  The loops read the
fds and limits from it and write back, after every system call that moved bytes, how
far they got, so the driver can restore positions and hand back residue after any
error, whichever backend ran.  A loop returns to its driver when:

* the transfer is done: ``remaining`` reached 0, or ``eof`` (the source ended);
* ``blocked`` is set (``nowait`` mode only): a side would block and an event loop must
  wait for it; calling the loop again resumes exactly where it stopped;
* it *yields* after a chunk (:meth:`Job.chunk_done` says when): ``stop`` was set (from
  another thread, say), or ``pause_at`` bytes were reached (an asyncio step ends).

Errors are raised: ``OSError`` from a system call (or a wait), marked as ours
(``zerocopy._errors.from_a_call``, ``from_a_wait``), or whatever a signal handler or
the progress callback raised, unmarked: the caller's (issue 11).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

from .._constants import AT_FD_POSITION, MAX_OFFSET, NO_LIMIT, NO_PIPE, UNTIL_EOF
from .._errors import from_a_wait, from_the_caller

__all__ = ["BLOCKED_BOTH", "BLOCKED_DST", "BLOCKED_SRC", "Job"]

#: values of ``Job.blocked``
BLOCKED_SRC = 1
BLOCKED_DST = 2
#: a direct splice between two pollable fds cannot tell which side blocked
BLOCKED_BOTH = BLOCKED_SRC | BLOCKED_DST


class Job:
    """Mutable state of one transfer, shared by a driver and a backend."""

    __slots__ = (
        "blocked",
        "chunk_size",
        "deadline",
        "dst_fd",
        "dst_offset",
        "dst_pollable",
        "dst_wait",
        "eof",
        "in_pipe",
        "nowait",
        "pause_at",
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
        "stop",
        "stoppable",
        "transferred",
    )

    def __init__(self, src_fd: int, dst_fd: int, *, chunk_size: int) -> None:
        self.src_fd = src_fd
        self.dst_fd = dst_fd
        #: where to read next, or AT_FD_POSITION
        self.src_offset = AT_FD_POSITION
        #: where to write next, or AT_FD_POSITION
        self.dst_offset = AT_FD_POSITION
        #: bytes still to move, or UNTIL_EOF
        self.remaining = UNTIL_EOF
        #: bytes delivered to the destination so far
        self.transferred = 0
        #: the source reported end of file
        self.eof = False
        #: bytes consumed from a non-seekable source but not delivered: handed back on
        #: error; in ``nowait`` mode, the bytes the next call writes first
        self.residue = b""
        #: most bytes per system call (and per progress report)
        self.chunk_size = chunk_size
        #: the caller's callback, after each chunk, with ``transferred``
        self.progress: Callable[[int], object] | None = None
        #: absolute time.monotonic() deadline for the whole transfer, or NO_LIMIT
        self.deadline = NO_LIMIT
        #: longest single wait for the source / destination (socket timeout), or NO_LIMIT
        self.src_wait = NO_LIMIT
        self.dst_wait = NO_LIMIT
        #: EAGAIN on this side means "wait with poll" (False for regular files, where
        #: EAGAIN is an error some filesystems return, python/cpython#87909)
        self.src_pollable = False
        self.dst_pollable = False
        #: our splice pipe (NO_PIPE when splicing directly) and how many bytes sit in it
        self.pipe_r = NO_PIPE
        self.pipe_w = NO_PIPE
        self.pipe_size = 0
        self.in_pipe = 0
        #: event-loop mode: on EAGAIN from a pollable side, set ``blocked`` and return
        #: instead of waiting with poll
        self.nowait = False
        #: which side the loop returned to wait for: BLOCKED_SRC, BLOCKED_DST or
        #: BLOCKED_BOTH; 0 for none
        self.blocked = 0
        #: the step budget: yield once ``transferred`` reaches this, or -1 for never
        self.pause_at = -1
        #: set (from any thread) to ask the loop to yield after the current chunk; the
        #: driver raises it.  Only looked at when ``stoppable`` is true.
        self.stop: BaseException | None = None
        #: someone may set ``stop``: the loops look after every chunk (which costs the
        #: native core a GIL round trip per chunk, so it is off unless needed)
        self.stoppable = False

    @property
    def finished(self) -> bool:
        """Nothing more to move: the count is reached or the source ended."""
        return self.remaining == 0 or self.eof

    def next_chunk(self) -> int:
        """The byte count to ask of the next system call: never past MAX_OFFSET (the
        kernel refuses pos + count beyond it; 0 bytes there reads as end of file)."""
        want = self.chunk_size
        if 0 <= self.remaining < want:
            want = self.remaining
        for pos in (self.src_offset, self.dst_offset):
            if pos >= 0:
                want = min(want, MAX_OFFSET - pos)
        return want

    def delivered(self, count: int) -> None:
        """Account *count* bytes written to the destination."""
        self.transferred += count
        if self.remaining != UNTIL_EOF:
            self.remaining -= count
        if self.dst_offset != AT_FD_POSITION:
            self.dst_offset += count

    def chunk_done(self) -> bool:
        """After each chunk: tell the progress callback, enforce the deadline even when
        nothing ever blocks (file to file, a fast peer), and say whether the loop must
        yield to its driver now (a stop request, or the step budget spent)."""
        if self.progress is not None:
            try:
                self.progress(self.transferred)
            except OSError as exc:
                # The caller's, even from a C function with no frame of its own, which
                # the backends' traceback test would take for our call (issue 11).
                from_the_caller(exc)
                raise
        if (self.deadline != NO_LIMIT and self.remaining != 0
                and time.monotonic() >= self.deadline):
            raise from_a_wait(OSError(errno.ETIMEDOUT, "transfer deadline passed"))
        return ((self.stoppable and self.stop is not None)
                or 0 <= self.pause_at <= self.transferred)

    def checks_each_chunk(self) -> bool:
        """Whether :meth:`chunk_done` can do anything but the deadline check: the
        native core hands each chunk to Python only then."""
        return self.progress is not None or self.stoppable or self.pause_at >= 0
