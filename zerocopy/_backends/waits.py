"""Waiting for a non-blocking fd in pure Python (the "os" and "portable" backends).

The native core has the same logic in C; both bound each wait by the endpoint's own
timeout (the stdlib's per-wait rule for sockets) and by the transfer's deadline.  In
``nowait`` mode nothing waits here: the side is recorded in ``job.blocked`` and
:class:`BlockingIOError` unwinds to the backend's ``run``, which returns to the event
loop's driver.
"""

from __future__ import annotations

import errno
import math
import os
import select
import time
from collections.abc import Callable

from .. import _faults
from .._constants import NO_LIMIT, POLL_AGAIN_FIRST_US, POLL_AGAIN_TRIES
from .._errors import ZeroCopyError, from_a_wait, raised_by_our_call, timeout_error
from .job import BLOCKED_BOTH, BLOCKED_DST, BLOCKED_SRC, Job

__all__ = ["poll_retrying", "retry_poll_again", "time_left", "wait_both", "wait_readable", "wait_writable"]


def time_left(per_wait: float, deadline: float, side: str) -> float:
    """Seconds one wait may last (NO_LIMIT for ever); TimeoutError once the deadline
    has passed."""
    if deadline == NO_LIMIT:
        return per_wait
    left = deadline - time.monotonic()
    if left <= 0:
        raise timeout_error(f"{side}: transfer deadline passed")
    return left if per_wait == NO_LIMIT else min(per_wait, left)


def _poll_once(fd: int, readable: bool, timeout: float) -> bool:
    if _faults.armed:
        _faults.check("poll")
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN if readable else select.POLLOUT)
        return bool(poller.poll(-1 if timeout == NO_LIMIT else math.ceil(timeout * 1000)))
    rl, wl = ([fd], []) if readable else ([], [fd])  # pragma: no cover - Windows
    return any(select.select(rl, wl, [], None if timeout == NO_LIMIT else timeout)[:2])


def poll_retrying(fd: int, readable: bool, timeout: float) -> bool:
    """One wait for *fd* (see :func:`retry_poll_again`)."""
    return retry_poll_again(lambda: _poll_once(fd, readable, timeout))


def retry_poll_again(poll_once: Callable[[], bool]) -> bool:
    """*poll_once*(); poll's own EAGAIN (poll(2): internal allocation failed, "may be
    attempted again") is retried after a short, growing sleep, a bounded number of
    times, then raised as an error that is not BlockingIOError (which the loops would
    take for "the fd would block" and wait again, for ever).  poll's errors are
    marked as a wait's: never a reason to fall back.  What a signal handler raised
    meanwhile is left as it is: the caller's (issue 11)."""
    for attempt in range(POLL_AGAIN_TRIES + 1):
        try:
            return poll_once()
        except BlockingIOError as exc:
            if not raised_by_our_call(exc):
                raise
            if attempt == POLL_AGAIN_TRIES:
                raise from_a_wait(ZeroCopyError(errno.EAGAIN, "poll kept failing: "
                                                f"{os.strerror(errno.EAGAIN)}")) from None
            time.sleep(POLL_AGAIN_FIRST_US * (1 << attempt) / 1e6)
        except OSError as exc:
            if raised_by_our_call(exc):
                from_a_wait(exc)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _wait(fd: int, readable: bool, per_wait: float, deadline: float, side: str) -> None:
    ready = poll_retrying(fd, readable, time_left(per_wait, deadline, side))
    if not ready:
        raise timeout_error(f"{side}: timed out waiting to {'read' if readable else 'write'}")


def _hand_to_event_loop(job: Job, side: int) -> None:
    job.blocked = side
    raise BlockingIOError(errno.EAGAIN, "would block")


def wait_readable(job: Job) -> None:
    """Block (GIL released) until the source can be read, or raise TimeoutError."""
    if job.nowait:
        _hand_to_event_loop(job, BLOCKED_SRC)
    _wait(job.src_fd, True, job.src_wait, job.deadline, "src")


def wait_writable(job: Job) -> None:
    """Block (GIL released) until the destination can be written, or raise TimeoutError."""
    if job.nowait:
        _hand_to_event_loop(job, BLOCKED_DST)
    _wait(job.dst_fd, False, job.dst_wait, job.deadline, "dst")


def wait_both(job: Job) -> None:
    """EAGAIN from a direct splice between two pollable fds: either side may have
    blocked, so wait until the source is readable, then the destination writable."""
    if job.nowait:
        _hand_to_event_loop(job, BLOCKED_BOTH)
    wait_readable(job)
    wait_writable(job)
