"""zerocopy's own splice pipes: pooled, sized, bounded, never leaked.

A socket-to-socket or socket-to-file splice goes through a pipe (splice needs a pipe
on one side).  Pipes are kept in a small pool because creating and sizing one costs
three system calls.  A pipe that may still hold bytes is closed, never pooled
(Go's putPipe does the same); after fork the child closes the pooled pipes it
inherited so parent and child never share one.
"""

from __future__ import annotations

import fcntl
import os
import threading

from ._constants import PIPE_POOL_LIMIT, PIPE_SIZE

__all__ = ["Pipe", "PipePool", "pool"]


class Pipe:
    """A non-blocking, close-on-exec pipe and its real capacity in bytes."""

    __slots__ = ("r", "size", "w")

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # EPERM over the user's pipe quota: the default size still works
        self.size: int = fcntl.fcntl(self.w, fcntl.F_GETPIPE_SZ)

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)

    def drain(self, count: int) -> bytes:
        """Read back up to *count* bytes that could not be delivered."""
        chunks = []
        while count > 0:
            try:
                data = os.read(self.r, count)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
            count -= len(data)
        return b"".join(chunks)


class PipePool:
    """A bounded, thread-safe pool of clean pipes."""

    def __init__(self, limit: int = PIPE_POOL_LIMIT) -> None:
        self.limit = limit
        self._idle: list[Pipe] = []
        self._lock = threading.Lock()

    def acquire(self) -> Pipe:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return Pipe()

    def release(self, pipe: Pipe, clean: bool) -> None:
        """Give *pipe* back; a pipe that may hold bytes (*clean* false) is closed."""
        if clean:
            with self._lock:
                if len(self._idle) < self.limit:
                    self._idle.append(pipe)
                    return
        pipe.close()

    def idle(self) -> int:
        """How many pipes wait in the pool (two fds each)."""
        return len(self._idle)

    def clear(self) -> None:
        """Close every idle pipe."""
        with self._lock:
            idle, self._idle = self._idle, []
        for pipe in idle:
            pipe.close()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self.clear()


pool = PipePool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=pool._after_fork_in_child)
