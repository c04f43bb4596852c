"""Every number and name that more than one part of zerocopy relies on, defined once.

The compiled core reads these at import (``_core.pyx``), so the C loops and the Python
backends cannot drift apart.  Nothing here imports anything of zerocopy's.
"""

from __future__ import annotations

__all__ = [
    "AT_FD_POSITION", "BACKEND_ENV", "DEFAULT_CHUNK_SIZE", "DISABLE_ENV", "MAX_OFFSET",
    "MAX_SYSCALL_BYTES",
    "NO_LIMIT", "NO_PIPE", "PIPE_POOL_LIMIT", "PIPE_SIZE", "POLL_AGAIN_FIRST_US",
    "POLL_AGAIN_TRIES", "PYTHON_EVERY", "RW_BUFFER_MAX",
    "UNTIL_EOF",
]

#: Linux moves at most MAX_RW_COUNT = INT_MAX & PAGE_MASK bytes per read/write-like call
#: (fs/read_write.c); asking for more only risks overflow on 32-bit builds.
MAX_SYSCALL_BYTES = 0x7FFFF000

#: The largest offset (and count) a transfer accepts: loff_t is a signed 64-bit number,
#: and the kernel refuses pos + count beyond it (rw_verify_area: EINVAL).
MAX_OFFSET = (1 << 63) - 1

#: Bytes per system call and per progress report (and per asyncio step): large enough
#: that syscall overhead is noise, small enough that progress and Ctrl-C stay prompt.
DEFAULT_CHUNK_SIZE = 8 << 20

#: The read/write buffer is min(chunk_size, this): bigger buffers stop paying off once
#: they outgrow the CPU caches.
RW_BUFFER_MAX = 1 << 20

#: Asked of zerocopy's splice pipes with F_SETPIPE_SZ: 1 MiB is the default
#: /proc/sys/fs/pipe-max-size, and a bigger pipe means fewer splice calls per byte (Go
#: measured +29 % at 1 MiB over 64 KiB, golang/go@c8bb3cff9e).
PIPE_SIZE = 1 << 20
#: Idle splice pipes kept for reuse; more than this are closed when released.
PIPE_POOL_LIMIT = 16

#: Seconds: while system calls return without needing Python, the core still takes the
#: GIL back at least this often to run signal handlers (docs/transfer.md, "Signals").
PYTHON_EVERY = 0.05

#: poll(2) failing with EAGAIN ("allocation of internal data structures failed, but the
#: request may be attempted again") is retried this many times in a row, sleeping
#: POLL_AGAIN_FIRST_US microseconds, then twice that, ... (255 ms in all), then raised.
POLL_AGAIN_TRIES = 8
POLL_AGAIN_FIRST_US = 1000

#: ``Job.remaining``: move until the source reports end of file.
UNTIL_EOF = -1
#: ``Job.src_offset`` / ``Job.dst_offset``: use (and advance) the fd's own position.
AT_FD_POSITION = -1
#: ``Job.pipe_r`` / ``Job.pipe_w``: no splice pipe of ours is leased.
NO_PIPE = -1
#: ``Job.deadline`` and the per-wait limits: none.
NO_LIMIT = -1.0

#: Names a backend that the default route must use, never silently another.
BACKEND_ENV = "ZEROCOPY_BACKEND"
#: Comma-separated methods turned off process-wide (the kill switch).
DISABLE_ENV = "ZEROCOPY_DISABLE"
