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
* Splice pipes are pooled and bounded: at most :data:`pipe_budget`.limit exist for
  relays at once (haproxy's ``maxpipes``); a direction that gets none copies.

:class:`Session` is what the blocking and the asyncio forms share: it checks the
sockets, makes them non-blocking for the relay, leases the pipes, builds the core's
pump and turns what the pump says into a :class:`RelayResult` or a
:class:`RelayError`.  Without the compiled core (not Linux) both forms fall back to
``zerocopy._relay.portable``, a Python loop with the same rules.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from .._constants import RW_BUFFER_MAX
from .._errors import ZeroCopyError, error_from_errno
from .._pipes import Pipe, PipePool

__all__ = ["AUTO_METHOD", "PipeBudget", "RelayError", "RelayResult", "Session",
           "pipe_budget", "relay"]

Ended = Literal["eof", "reset", "idle", "error", "interrupted"]
RelayMethod = Literal["splice", "readwrite"]

#: The run codes of the core's RelayPump.run (_core_include/relay.pxi).
PUMP_DONE, PUMP_BLOCKED, PUMP_FAILED, PUMP_IDLE, PUMP_YIELD = 0, 1, 2, 3, 5

#: What ``method="auto"`` uses: the winner of the interleaved splice-against-copy
#: measurement in docs/relay.md ("Splice or copy"): copy moved more Gbit/s in five of
#: six columns over two runs; splice used less CPU per GB in all six.
AUTO_METHOD: RelayMethod = "readwrite"
#: The copy method's largest buffer per direction: as large as a splice pipe, so both
#: make the same number of system calls per byte.  It starts at 64 KiB and doubles
#: each time a read fills it, so a connection that carries little never holds 1 MiB.
COPY_BUFFER = RW_BUFFER_MAX
#: Names *method* may take; "copy" and "readwrite" are the same recv/send loop.
METHODS = ("auto", "splice", "copy", "readwrite")
#: errno values that mean the peer aborted the connection.
_ABORTS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ETIMEDOUT})


@dataclass(frozen=True)
class RelayResult:
    """What a relay moved and how it ended.

    ``ended`` is ``"eof"`` when both directions saw EOF and delivered everything,
    ``"idle"`` when the idle timeout stopped it (sockets left open for the caller),
    ``"interrupted"`` on the ``relay_result`` of an exception that stopped it (a
    signal handler's, cancellation).  After ``"idle"`` and ``"interrupted"`` the
    residues hold the bytes read from one side and not yet delivered to the other.
    """

    a_to_b: int
    b_to_a: int
    method_a_to_b: RelayMethod
    method_b_to_a: RelayMethod
    ended: Ended
    seconds: float
    residue_a_to_b: bytes = b""
    residue_b_to_a: bytes = b""


class RelayError(ZeroCopyError):
    """A relay stopped on an error (a reset, a refused write).

    Carries the bytes each way, each direction's residue (read, not delivered) and
    ``side``: ``"a"`` or ``"b"``, the socket that failed.  Each instance is also the
    builtin subclass for its errno (``ConnectionResetError`` for a reset).
    """

    a_to_b: int = 0
    b_to_a: int = 0
    residue_a_to_b: bytes = b""
    residue_b_to_a: bytes = b""
    side: str = ""
    ended: Ended = "error"


def relay_error(err: int, detail: str) -> RelayError:
    """A RelayError that is also the builtin OSError subclass for *err*, its message
    *detail* and the errno's text (pickles like every ZeroCopyError)."""
    return error_from_errno(err, detail, kind=RelayError)


def reset(sock: socket.socket) -> None:
    """Abort *sock*: SO_LINGER 0 then close sends a RST, never a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # already reset by its peer, or not TCP: closing is all there is to do
    sock.close()


class PipeBudget:
    """Splice pipes for relays: reused through their own pool, at most *limit* leased
    at once (two per spliced connection).  Past the limit, or when pipe2 fails
    (EMFILE), a direction gets no pipe and copies instead."""

    def __init__(self, limit: int = 1024, keep: int = 64) -> None:
        self.limit = limit
        self.pool = PipePool(keep)
        self.leased = 0
        self._lock = threading.Lock()

    def lease(self) -> Pipe | None:
        with self._lock:
            if self.leased >= self.limit:
                return None
            self.leased += 1
        try:
            return self.pool.acquire()
        except OSError:
            with self._lock:
                self.leased -= 1
            return None

    def give_back(self, pipe: Pipe, clean: bool) -> None:
        with self._lock:
            self.leased -= 1
        self.pool.release(pipe, clean)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self.leased = 0
        self.pool._after_fork_in_child()


#: The pipes every relay in this process shares (``zerocopy relay --max-pipes``).
pipe_budget = PipeBudget()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=pipe_budget._after_fork_in_child)


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


def check_arguments(a: socket.socket, b: socket.socket, idle_timeout: float | None,
                    method: str) -> None:
    """The checks both implementations make before touching the sockets."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    for name, sock in (("a", a), ("b", b)):
        if not isinstance(sock, socket.socket):
            raise TypeError(f"relay: {name} must be a socket.socket, not {type(sock).__name__}")
        if sock.fileno() < 0:
            raise ValueError(f"relay: {name} is closed")
    if a.fileno() == b.fileno():
        raise ValueError("relay: a and b are the same socket")
    if idle_timeout is not None and idle_timeout <= 0:
        raise ValueError("relay: idle_timeout must be > 0 or None")


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
            self._restore()
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
        result = self.result("eof" if code == PUMP_DONE else "idle")
        self._give_back_pipes()
        self._restore()
        return result

    def interrupted(self, exc: BaseException) -> None:
        """An exception from outside the pump (a signal handler's, cancellation): give
        the pipes back, restore the sockets, and tell *exc* what had moved."""
        result = self.result("interrupted")
        self._give_back_pipes()
        self._restore()
        exc.relay_result = result  # type: ignore[attr-defined]
        exc.add_note(f"relay interrupted after a_to_b={result.a_to_b} "
                     f"b_to_a={result.b_to_a} bytes")

    def _failure(self) -> RelayError:
        """Reset both sockets (the healthy one with a RST) and build the error."""
        side_index, err, call = self.pump.failure
        side = "ab"[side_index]
        residue = (self.pump.residue(0), self.pump.residue(1))
        self._give_back_pipes()
        healthy, failed = (self.b, self.a) if side == "a" else (self.a, self.b)
        reset(healthy)
        reset(failed)
        error = relay_error(err, f"relay: {call} on side {side}")
        moved = self.pump.moved
        error.a_to_b, error.b_to_a = moved
        error.residue_a_to_b, error.residue_b_to_a = residue
        error.side = side
        error.ended = "reset" if err in _ABORTS else "error"
        return error

    def _give_back_pipes(self) -> None:
        # Clean: each caller has taken the bytes out with residue() first, or the
        # pump never ran.
        for pipe in self.pipes:
            if pipe is not None:
                pipe_budget.give_back(pipe, clean=True)
        self.pipes = [None, None]

    def _restore(self) -> None:
        for sock, timeout in zip((self.a, self.b), self.timeouts):
            if timeout != 0.0 and sock.fileno() >= 0:
                sock.settimeout(timeout)


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
