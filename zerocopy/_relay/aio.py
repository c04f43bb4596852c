"""``await arelay(a, b)``: the core's two-way pump on the running event loop, with no
thread at all.

The pump runs in its nowait form: it moves bytes with non-blocking splice (or
recv/send) until both directions would block, and says which socket waits for what.
The loop's ``add_reader``/``add_writer`` callbacks run the next step directly: no
future and no task wake-up per event, only one future for the whole relay (profiled
for issue 10's connections per second: the per-wake futures were most of arelay's
own cost).  The watches are kept while the wants stay the same, so a busy transfer
costs no epoll_ctl per wake; a pump that keeps moving yields every 2 ms (the next
step is scheduled with ``call_soon``) so the loop's other connections run too.
"""

from __future__ import annotations

import asyncio
import select
import socket

from .common import RelayResult, check_arguments
from .pump import PUMP_BLOCKED, PUMP_IDLE, PUMP_YIELD, Session, _core_pump

__all__ = ["arelay", "start"]


class _Driver:
    """Runs one session's pump from loop callbacks until it ends, then settles
    ``done`` with the result or the error."""

    def __init__(self, loop: asyncio.AbstractEventLoop, session: Session,
                 idle_timeout: float | None) -> None:
        self.loop = loop
        self.session = session
        self.pump = session.pump
        self.fds = (session.a.fileno(), session.b.fileno())
        self.current = (0, 0)
        self.idle_timeout = idle_timeout
        self.idle_timer: asyncio.TimerHandle | None = None
        self.batch_timer: asyncio.TimerHandle | None = None
        self.soon: asyncio.Handle | None = None
        self.done: asyncio.Future[RelayResult] = loop.create_future()
        self.ended = False
        if idle_timeout is not None:
            self.idle_timer = loop.call_later(idle_timeout, self._idle_check)

    def step(self, readable: int = 3) -> None:
        """Move what can be moved now; the watches say when to come back.  *readable*:
        the sockets (bit 0: a, bit 1: b) the wake said are readable."""
        self.soon = None
        try:
            code = self.pump.run(True, readable)
        except BaseException as exc:  # a signal handler's, run by the pump
            self._end_with(exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return
        if code == PUMP_YIELD:
            self.soon = self.loop.call_soon(self.step)
        elif code == PUMP_BLOCKED:
            wants = self.pump.wants
            if wants != self.current:
                self._watch(wants)
            if self.batch_timer is None:  # one at a time
                self._arm_batch_timer(self.pump.batch_wait)
        else:
            self._finish(code)

    def _batch_due(self) -> None:
        # A batching direction's wait for its mark may have run out: then it reads
        # what there is.  In a steady stream the wait that armed the timer has ended
        # and a later one is not due yet: arm for it without running the pump.
        self.batch_timer = None
        wait = self.pump.batch_wait
        if wait == 0:
            self.step(0)  # which arms the next one if a wait is left
        else:
            self._arm_batch_timer(wait)

    def _arm_batch_timer(self, wait: float) -> None:
        # *wait*: the pump's batch_wait; -1.0 when no direction batches.
        if wait >= 0:
            self.batch_timer = self.loop.call_later(wait, self._batch_due)

    def _idle_check(self) -> None:
        # The pump's own clock decides idleness: a wake with nothing to move (a
        # spurious one, say) must not restart it.
        assert self.idle_timeout is not None
        left = self.idle_timeout - self.pump.idle_for
        if left > 0:
            self.idle_timer = self.loop.call_later(left, self._idle_check)
        else:
            self.idle_timer = None
            self._finish(PUMP_IDLE)

    def _finish(self, code: int) -> None:
        self._unhook()
        try:
            result = self.session.finish(code)
        except BaseException as exc:  # the RelayError
            if not self.done.done():
                self.done.set_exception(exc)
            return
        if not self.done.done():
            self.done.set_result(result)

    def _end_with(self, exc: BaseException) -> None:
        self._unhook()
        self.session.interrupted(exc)
        if not self.done.done():
            self.done.set_exception(exc)

    def cancel(self, exc: BaseException) -> None:
        """The awaiting task was cancelled (which cancelled ``done``): stop, and tell
        *exc* what moved."""
        if not self.ended:
            self._unhook()
            self.session.interrupted(exc)

    def _unhook(self) -> None:
        self.ended = True
        self._watch((0, 0))
        for timer in (self.idle_timer, self.batch_timer):
            if timer is not None:
                timer.cancel()
        self.idle_timer = self.batch_timer = None
        if self.soon is not None:
            self.soon.cancel()
            self.soon = None

    def _watch(self, wants: tuple[int, int]) -> None:
        for side, (fd, old, new) in enumerate(zip(self.fds, self.current, wants)):
            if old == new:
                continue
            if (old ^ new) & select.POLLIN:
                if new & select.POLLIN:
                    self.loop.add_reader(fd, self.step, 1 << side)
                else:
                    self.loop.remove_reader(fd)
            if (old ^ new) & select.POLLOUT:
                if new & select.POLLOUT:
                    self.loop.add_writer(fd, self.step, 0)
                else:
                    self.loop.remove_writer(fd)
        self.current = wants


def start(loop: asyncio.AbstractEventLoop, a: socket.socket, b: socket.socket,
          idle_timeout: float | None = None, method: str = "auto") -> _Driver | None:
    """Start relaying on *loop* at once (the first step runs now); ``driver.done``
    settles with the result or the error.  None without the compiled core.  For a
    server that would rather not create a task per connection (``zerocopy relay``)."""
    check_arguments(a, b, idle_timeout, method)
    pump_class = _core_pump()
    if pump_class is None:
        return None
    driver = _Driver(loop, Session(pump_class, a, b, idle_timeout, method), idle_timeout)
    driver.step()
    return driver


async def arelay(a: socket.socket, b: socket.socket, *, idle_timeout: float | None = None,
                 method: str = "auto") -> RelayResult:
    """Async form of :func:`zerocopy.relay`, with the same rules and result.

    Cancellation leaves both sockets open (the caller closes them), returns the pipes
    to the pool and sets ``relay_result`` on the CancelledError.

    .. versionadded:: 0.2.0
    """
    driver = start(asyncio.get_running_loop(), a, b, idle_timeout, method)
    if driver is None:
        from .portable_aio import arelay as portable_arelay
        return await portable_arelay(a, b, idle_timeout=idle_timeout, method=method)
    try:
        return await driver.done
    except asyncio.CancelledError as exc:
        driver.cancel(exc)
        raise
