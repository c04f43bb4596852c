"""Fault injection: make the next calls of a system call fail with a chosen errno.

One seam for every backend.  The native core checks a small C table before each
system call (``_faults.pxi``: one load and a branch when nothing is armed); the
``os`` and ``portable`` backends check :data:`armed` before each ``os`` call and, only
when it is set, ask :func:`check`.  When the core is built the C table is the single
record for all backends, so "the next N calls" counts the same whichever backend
makes them; without the core a Python table stands in.

An injected failure takes the call site's normal error path, as if the kernel had
returned it: EAGAIN waits (on a pollable fd) or falls back, EPIPE is raised, EINVAL
before the first byte falls back.  EINTR is consumed and the call retried, which is
what the core does (signal handlers run, then retry) and what ``os`` functions do
themselves (PEP 475).

The state is process-wide: a fault armed in one thread fires in whichever thread
makes the next matching call.  While any fault is armed the core's fast path steps
aside (``_fastpath.pxi``), so calls meet the fault in the full path, where fallbacks
are recorded.  Meant for tests; :func:`clear` after each one (the ``zerocopy_faults``
pytest fixture does).
"""

from __future__ import annotations

import errno as _errno
import os
import threading
from typing import Literal, get_args

__all__ = ["SYSCALLS", "FaultInjector", "Syscall", "armed", "check", "clear", "inject", "pending"]

#: The system calls a fault can be injected into.  "read" covers read/pread/readv,
#: "write" write/pwrite, "poll" the waits on a non-blocking fd; every splice(2)
#: counts, two per chunk when going through zerocopy's own pipe.
Syscall = Literal["sendfile", "splice", "copy_file_range", "read", "write", "poll"]
SYSCALLS: tuple[Syscall, ...] = get_args(Syscall)

#: True while a fault may be due; the pure-Python backends read it before each call.
armed = False

try:
    from . import _core

    _HAVE_CORE = True
except ImportError:  # the core is not built here: the Python table below serves
    _HAVE_CORE = False

_lock = threading.Lock()
# slot -> [errno, skip, times]; used only when the core is absent
_table: dict[int, list[int]] = {}


def _slot(syscall: str) -> int:
    try:
        return SYSCALLS.index(syscall)
    except ValueError:
        raise ValueError(f"cannot inject faults into {syscall!r}; "
                         f"choose from {', '.join(SYSCALLS)}") from None


def inject(syscall: Syscall, err: int, times: int = 1, *, skip: int = 0) -> None:
    """Let the next *skip* calls of *syscall* through, then make *times* calls fail
    with errno *err* (in any backend, any thread).  Replaces what was set for
    *syscall* before."""
    global armed
    slot = _slot(syscall)
    if isinstance(err, bool) or not isinstance(err, int) or err <= 0:
        raise ValueError(f"err must be a positive errno, got {err!r}")
    if times < 0 or skip < 0:
        raise ValueError("times and skip must be >= 0")
    with _lock:
        if _HAVE_CORE:
            _core.fault_set(slot, err, times, skip)
        elif times:
            _table[slot] = [err, skip, times]
        else:
            _table.pop(slot, None)
        armed = armed or times > 0


def pending(syscall: Syscall) -> int:
    """How many injected failures of *syscall* are still to come."""
    slot = _slot(syscall)
    if _HAVE_CORE:
        return _core.fault_pending(slot)[1]
    with _lock:
        entry = _table.get(slot)
        return entry[2] if entry else 0


def clear() -> None:
    """Disarm every injected fault."""
    global armed
    with _lock:
        if _HAVE_CORE:
            _core.fault_clear()
        _table.clear()
        armed = False


def _take(slot: int) -> int:
    if _HAVE_CORE:
        return _core.fault_take(slot)
    with _lock:
        entry = _table.get(slot)
        if entry is None:
            return 0
        if entry[1] > 0:
            entry[1] -= 1
            return 0
        entry[2] -= 1
        if entry[2] == 0:
            del _table[slot]
        return entry[0]


def check(syscall: Syscall) -> None:
    """Count one call of *syscall*; raise the OSError an injected failure asks for.

    Called by the pure-Python backends only when :data:`armed` is set.
    """
    err = _take(SYSCALLS.index(syscall))
    if err and err != _errno.EINTR:  # EINTR: retried, as os functions do (PEP 475)
        # OSError(errno, ...) builds the matching subclass (BlockingIOError for EAGAIN).
        raise OSError(err, f"{os.strerror(err)} (injected into {syscall})")


class FaultInjector:
    """The typed face of this module that the ``zerocopy_faults`` fixture hands out."""

    SYSCALLS = SYSCALLS

    def fail(self, syscall: Syscall, err: int, times: int = 1, *, skip: int = 0) -> None:
        """Let the next *skip* calls of *syscall* through, then fail *times* calls
        with errno *err* (any backend, any thread); replaces the previous setting."""
        inject(syscall, err, times, skip=skip)

    def pending(self, syscall: Syscall) -> int:
        """How many injected failures of *syscall* are still to come."""
        return pending(syscall)

    def clear(self) -> None:
        """Disarm every injected fault."""
        clear()
