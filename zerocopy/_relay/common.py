"""What both relay implementations share (the core's pump in ``pump``/``aio``, the
Python loop in ``portable``/``portable_aio``): the result and error types, the
argument checks, the reset, and the splice pipes' budget."""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Literal

from .._errors import ZeroCopyError, error_from_errno
from .._pipes import Pipe, PipePool

__all__ = ["AUTO_METHOD", "METHODS", "Ended", "PipeBudget", "RelayError", "RelayMethod",
           "RelayResult", "check_arguments", "pipe_budget", "relay_failure", "reset",
           "reset_pair", "restore_timeouts", "tell_interrupted"]

Ended = Literal["eof", "reset", "idle", "error", "interrupted"]
RelayMethod = Literal["splice", "readwrite"]

#: What ``method="auto"`` uses: the winner of the interleaved splice-against-copy
#: measurement in docs/relay.md ("Splice or copy"): copy moved more Gbit/s in five of
#: six columns over two runs; splice used less CPU per GB in all six.
AUTO_METHOD: RelayMethod = "readwrite"
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


def relay_failure(err: int, detail: str, side: str, moved: tuple[int, int],
                  residue: tuple[bytes, bytes]) -> RelayError:
    """The RelayError for a call that failed with *err* on *side* ("a" or "b"): also
    the builtin OSError subclass for *err* (pickles like every ZeroCopyError), with
    the bytes each way, each direction's residue and how it ended."""
    error = error_from_errno(err, detail, kind=RelayError)
    error.a_to_b, error.b_to_a = moved
    error.residue_a_to_b, error.residue_b_to_a = residue
    error.side = side
    error.ended = "reset" if err in _ABORTS else "error"
    return error


def reset(sock: socket.socket) -> None:
    """Abort *sock*: SO_LINGER 0 then close sends a RST, never a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # already reset by its peer, or not TCP: closing is all there is to do
    sock.close()


def reset_pair(a: socket.socket, b: socket.socket, failed_side: str) -> None:
    """After a failed call on *failed_side* ("a" or "b"): reset the healthy socket
    first, so its peer sees a RST, never a clean EOF, then the failed one."""
    healthy, failed = (b, a) if failed_side == "a" else (a, b)
    reset(healthy)
    reset(failed)


def tell_interrupted(exc: BaseException, result: RelayResult) -> None:
    """Give *exc*, which stopped a relay from outside (a signal handler's exception,
    cancellation), the result so far and a note saying it."""
    exc.relay_result = result  # type: ignore[attr-defined]
    exc.add_note(f"relay interrupted after a_to_b={result.a_to_b} "
                 f"b_to_a={result.b_to_a} bytes")


def restore_timeouts(socks: tuple[socket.socket, socket.socket],
                     timeouts: tuple[float | None, float | None]) -> None:
    """Give the sockets still open the timeouts they had before the relay made them
    non-blocking (an event loop's, 0.0, were never changed)."""
    for sock, timeout in zip(socks, timeouts):
        if timeout != 0.0 and sock.fileno() >= 0:
            sock.settimeout(timeout)


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
