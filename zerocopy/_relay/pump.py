"""``relay(a, b)``: both directions between two stream sockets in one loop of the
compiled core (``_core_include/relay.pxi``), with the GIL released; no thread per
direction.

Rules (each one a bug some proxy shipped):

* Half-close is propagated, never turned into a full close: EOF read from one side
  becomes ``shutdown(SHUT_WR)`` on the other and the opposite direction goes on
  (moby/libnetwork #1598, inetaf/tcpproxy #21, jpillora/chisel #536).
* A reset is never turned into a clean EOF: a failed call on one side sets
  ``SO_LINGER`` 0 on the other and closes it, so that peer sees a RST too.
* Bytes already read but not delivered (in a splice pipe or a buffer) are handed back
  as each direction's residue on the error, never dropped.
* Splice pipes are pooled and bounded: at most ``common.pipe_budget.limit`` exist for
  relays at once (haproxy's ``maxpipes``); a direction that gets none copies.

:class:`Session` is what the blocking and the asyncio forms share: it checks the
sockets, makes them non-blocking for the relay, leases the pipes, builds the core's
pump and turns what the pump says into a :class:`RelayResult` or a
:class:`RelayError`.  Without the compiled core (not Linux) both forms fall back to
``zerocopy._relay.portable``, a Python loop with the same rules.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from .._constants import RW_BUFFER_MAX
from .._pipes import Pipe
from .common import (AUTO_METHOD, Ended, RelayError, RelayMethod, RelayResult,
                     check_arguments, pipe_budget, relay_failure, reset_pair,
                     restore_timeouts, tell_interrupted)

__all__ = ["COPY_BUFFER", "Session", "relay"]

#: The run codes of the core's RelayPump.run (_core_include/relay.pxi).
PUMP_DONE, PUMP_BLOCKED, PUMP_FAILED, PUMP_IDLE, PUMP_YIELD = 0, 1, 2, 3, 5

#: The copy method's largest buffer per direction: as large as a splice pipe, so both
#: make the same number of system calls per byte.  It starts at 64 KiB and doubles
#: each time a read fills it, so a connection that carries little never holds 1 MiB.
COPY_BUFFER = RW_BUFFER_MAX


def _load_core_pump() -> Any:
    try:
        from .._core import RelayPump
    except ImportError:  # the core is built on Linux only
        return None
    return RelayPump


_CORE_PUMP = _load_core_pump()


def _core_pump() -> Any:
    """The core's RelayPump class, or None without the compiled core."""
    return _CORE_PUMP


class Session:
    """One relay between *a* and *b* in the core's pump, from setup to result."""

    def __init__(self, pump_class: Any, a: socket.socket, b: socket.socket,
                 idle_timeout: float | None, method: str) -> None:
        self.a, self.b = a, b
        self.started = time.monotonic()
        self.timeouts = (a.gettimeout(), b.gettimeout())
        chosen = AUTO_METHOD if method == "auto" else method
        self.pipes: list[Pipe | None] = [None, None]
        try:
            if chosen == "splice":
                self.pipes = [pipe_budget.lease(), pipe_budget.lease()]
            for sock, timeout in zip((a, b), self.timeouts):
                if timeout != 0.0:  # an event loop's sockets are non-blocking already
                    sock.setblocking(False)
            ab, ba = self.pipes
            self.pump = pump_class(
                a.fileno(), b.fileno(),
                ab.r if ab else -1, ab.w if ab else -1, ab.size if ab else 0,
                ba.r if ba else -1, ba.w if ba else -1, ba.size if ba else 0,
                COPY_BUFFER, -1.0 if idle_timeout is None else idle_timeout)
        except BaseException:
            self._give_back_pipes()
            restore_timeouts((a, b), self.timeouts)
            raise

    def methods(self) -> tuple[RelayMethod, RelayMethod]:
        splicing = self.pump.splicing
        ab: RelayMethod = "splice" if splicing[0] else "readwrite"
        ba: RelayMethod = "splice" if splicing[1] else "readwrite"
        return ab, ba

    def result(self, ended: Ended) -> RelayResult:
        """The result so far; takes the residues out of the pipes (left clean)."""
        residue = (self.pump.residue(0), self.pump.residue(1))
        moved = self.pump.moved
        methods = self.methods()
        return RelayResult(moved[0], moved[1], methods[0], methods[1], ended,
                           time.monotonic() - self.started, residue[0], residue[1])

    def finish(self, code: int) -> RelayResult:
        """Turn the pump's last run *code* into the result, or raise RelayError."""
        if code == PUMP_FAILED:
            raise self._failure()
        return self._end("eof" if code == PUMP_DONE else "idle")

    def interrupted(self, exc: BaseException) -> None:
        """An exception from outside the pump (a signal handler's, cancellation): give
        the pipes back, restore the sockets, and tell *exc* what had moved."""
        tell_interrupted(exc, self._end("interrupted"))

    def _end(self, ended: Ended) -> RelayResult:
        """The result, then the pipes given back and the sockets as their owner had
        them (low-water mark, timeout): they stay open."""
        result = self.result(ended)
        self._give_back_pipes()
        self.pump.settle()
        restore_timeouts((self.a, self.b), self.timeouts)
        return result

    def _failure(self) -> RelayError:
        """Reset both sockets (the healthy one with a RST) and build the error."""
        side_index, err, call = self.pump.failure
        side = "ab"[side_index]
        residue = (self.pump.residue(0), self.pump.residue(1))
        self._give_back_pipes()
        reset_pair(self.a, self.b, side)
        return relay_failure(err, f"relay: {call} on side {side}", side, self.pump.moved,
                             residue)

    def _give_back_pipes(self) -> None:
        # Clean: each caller has taken the bytes out with residue() first, or the
        # pump never ran.
        for pipe in self.pipes:
            if pipe is not None:
                pipe_budget.give_back(pipe, clean=True)
        self.pipes = [None, None]


def relay(a: socket.socket, b: socket.socket, *, idle_timeout: float | None = None,
          method: str = "auto") -> RelayResult:
    """Move bytes both ways between stream sockets *a* and *b* until both are done.

    EOF on one side becomes ``shutdown(SHUT_WR)`` on the other while the other
    direction goes on.  A reset on one side resets the other (``SO_LINGER`` 0, then
    close; both sockets are closed) and raises :class:`RelayError` carrying the bytes
    each way and the residue.  With *idle_timeout* seconds without a byte moving, the
    relay returns with ``ended == "idle"`` and leaves both sockets open.  *method*:
    ``"auto"`` (see :data:`AUTO_METHOD`), ``"splice"`` through pooled pipes, or
    ``"copy"`` (also spelt ``"readwrite"``): recv/send through a buffer of up to 1 MiB.

    One loop in the compiled core serves both directions with the GIL released;
    signal handlers still run every 50 ms at most, and an exception from one (Ctrl-C)
    stops the relay with the sockets open and ``relay_result`` set on the exception.

    .. versionadded:: 0.2.0
    """
    check_arguments(a, b, idle_timeout, method)
    pump_class = _core_pump()
    if pump_class is None:
        from .portable import relay as portable_relay
        return portable_relay(a, b, idle_timeout=idle_timeout, method=method)
    session = Session(pump_class, a, b, idle_timeout, method)
    try:
        code = session.pump.run(False)
    except BaseException as exc:
        session.interrupted(exc)
        raise
    return session.finish(code)
