"""``await arelay(a, b)``: the core's two-way pump on the running event loop, with no
thread at all.

The pump runs in its nowait form: it moves bytes with non-blocking splice (or
recv/send) until both directions would block, and says which socket waits for what;
the loop's ``add_reader``/``add_writer`` wake it when that changes.  The watches are
kept while the wants stay the same, so a busy transfer costs no epoll_ctl per wake.
"""

from __future__ import annotations

import asyncio
import select
import socket

from .pump import (PUMP_BLOCKED, PUMP_IDLE, PUMP_YIELD, RelayResult, Session, _core_pump,
                   check_arguments)

__all__ = ["arelay"]


class _Watches:
    """The reader/writer watches on the two sockets, and the future they wake."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fds: tuple[int, int]) -> None:
        self.loop = loop
        self.fds = fds
        self.current = (0, 0)
        self.waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def set(self, wants: tuple[int, int]) -> None:
        for fd, old, new in zip(self.fds, self.current, wants):
            if old == new:
                continue
            if (old ^ new) & select.POLLIN:
                if new & select.POLLIN:
                    self.loop.add_reader(fd, self._wake)
                else:
                    self.loop.remove_reader(fd)
            if (old ^ new) & select.POLLOUT:
                if new & select.POLLOUT:
                    self.loop.add_writer(fd, self._wake)
                else:
                    self.loop.remove_writer(fd)
        self.current = wants

    def clear(self) -> None:
        self.set((0, 0))

    async def wait(self, timeout: float | None) -> None:
        """Wait for a watch to fire, or *timeout* seconds."""
        self.waiter = self.loop.create_future()
        handle = None if timeout is None else self.loop.call_later(timeout, self._wake)
        try:
            await self.waiter
        finally:
            self.waiter = None
            if handle is not None:
                handle.cancel()


async def arelay(a: socket.socket, b: socket.socket, *, idle_timeout: float | None = None,
                 method: str = "auto") -> RelayResult:
    """Async form of :func:`zerocopy.relay`, with the same rules and result.

    Cancellation leaves both sockets open (the caller closes them), returns the pipes
    to the pool and sets ``relay_result`` on the CancelledError.

    .. versionadded:: 0.2.0
    """
    check_arguments(a, b, idle_timeout, method)
    pump_class = _core_pump()
    if pump_class is None:
        from .portable_aio import arelay as portable_arelay
        return await portable_arelay(a, b, idle_timeout=idle_timeout, method=method)
    loop = asyncio.get_running_loop()
    session = Session(pump_class, a, b, idle_timeout, method)
    watches = _Watches(loop, (a.fileno(), b.fileno()))
    pump = session.pump
    try:
        while True:
            code = pump.run(True)
            if code == PUMP_YIELD:
                await asyncio.sleep(0)  # still moving: the loop's other callbacks first
                continue
            if code != PUMP_BLOCKED:
                break
            # The pump's own clock decides idleness: a wake with nothing to move (a
            # spurious one, say) must not restart it.
            if idle_timeout is not None and pump.idle_for >= idle_timeout:
                code = PUMP_IDLE
                break
            watches.set(pump.wants)
            await watches.wait(None if idle_timeout is None
                               else idle_timeout - pump.idle_for)
    except BaseException as exc:
        watches.clear()
        session.interrupted(exc)
        raise
    watches.clear()
    return session.finish(code)
