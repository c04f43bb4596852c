"""The relay without the compiled core (not Linux): both directions between two
stream sockets in one Python poll loop, until both are done.

The same rules as ``zerocopy._relay.pump`` (its module doc says why each):

* Half-close is propagated, never turned into a full close: EOF read from one side
  becomes ``shutdown(SHUT_WR)`` on the other and the opposite direction goes on
  (moby/libnetwork #1598, inetaf/tcpproxy #21, jpillora/chisel #536).
* A reset is never turned into a clean EOF: ECONNRESET or EPIPE on one side sets
  ``SO_LINGER`` 0 on the other and closes it, so the peer sees a RST too.
* Bytes already read but not delivered (in a splice pipe or a buffer) are handed back
  as each direction's residue on the error, never dropped.
* Splice pipes are leased from ``common.pipe_budget``; a pipe that may still hold bytes
  is closed, not pooled.

The blocking form is a ``poll`` loop over non-blocking splice where ``os.splice``
exists, recv/send elsewhere; the async form (``portable_aio``) drives the same
:class:`Direction` state machines from the event loop.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time

from .._pipes import Pipe
from .common import (Ended, RelayError, RelayMethod, RelayResult, pipe_budget, relay_failure,
                     reset_pair, restore_timeouts, tell_interrupted)

__all__ = ["Direction", "Pump", "relay"]

#: Bytes asked of one read when splice is refused (large buffer: fewer system calls).
READ_SIZE = 1 << 18
#: errno values that mean "splice cannot serve this pair" before any byte moved.
_SPLICE_REFUSED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF})
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class _SideFailed(Exception):
    def __init__(self, side: str, exc: OSError) -> None:
        super().__init__(side, exc)
        self.side = side
        self.exc = exc


class Direction:
    """One direction, src → dst, as a non-blocking state machine.

    Bytes wait either in a splice pipe (``pending`` counts them) or in ``buffer``
    after splice was refused.  ``eof`` is set when src said EOF; ``done`` once that
    EOF was passed on as ``shutdown(SHUT_WR)`` on dst.
    """

    def __init__(self, src: socket.socket, dst: socket.socket, src_name: str,
                 dst_name: str, use_splice: bool) -> None:
        self.src, self.dst = src, dst
        self.src_name, self.dst_name = src_name, dst_name
        self.pipe: Pipe | None = pipe_budget.lease() if use_splice else None
        self.method: RelayMethod = "splice" if self.pipe else "readwrite"
        self.pending = 0
        self.buffer = b""
        self.moved = 0
        self.eof = False
        self.done = False

    @property
    def capacity(self) -> int:
        return self.pipe.size if self.pipe else READ_SIZE

    def wants_read(self) -> bool:
        return not self.eof and self.pending + len(self.buffer) < self.capacity

    def wants_write(self) -> bool:
        return not self.done and (self.pending > 0 or bool(self.buffer))

    def on_readable(self) -> bool:
        """Read what src has; True if anything happened."""
        try:
            if self.pipe is not None:
                try:
                    n = os.splice(self.src.fileno(), self.pipe.w,
                                  self.capacity - self.pending, flags=_SPLICE_FLAGS)
                except OSError as exc:
                    if exc.errno in _SPLICE_REFUSED and self.moved == 0 and self.pending == 0:
                        self._to_readwrite()
                        return self.on_readable()
                    raise
                self.pending += n
            else:
                data = self.src.recv(READ_SIZE - len(self.buffer))
                n = len(data)
                self.buffer += data
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            raise _SideFailed(self.src_name, exc) from exc
        if n == 0:
            self.eof = True
        self._finish_if_drained()
        return True

    def on_writable(self) -> bool:
        """Deliver what waits to dst; True if anything happened."""
        try:
            if self.pipe is not None and self.pending:
                n = os.splice(self.pipe.r, self.dst.fileno(), self.pending,
                              flags=_SPLICE_FLAGS)
                self.pending -= n
            elif self.buffer:
                n = self.dst.send(self.buffer)
                self.buffer = self.buffer[n:]
            else:
                n = 0
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            raise _SideFailed(self.dst_name, exc) from exc
        self.moved += n
        self._finish_if_drained()
        return n > 0

    def _finish_if_drained(self) -> None:
        if self.eof and not self.done and self.pending == 0 and not self.buffer:
            self.done = True
            try:
                # Half-close: the opposite direction goes on (moby #1598).
                self.dst.shutdown(socket.SHUT_WR)
            except OSError as exc:
                if exc.errno != errno.ENOTCONN:
                    raise _SideFailed(self.dst_name, exc) from exc

    def _to_readwrite(self) -> None:
        if self.pipe is not None:
            pipe_budget.give_back(self.pipe, clean=True)
        self.pipe = None
        self.method = "readwrite"

    def residue(self) -> bytes:
        """Take out what was read and not delivered; the pipe is clean afterwards."""
        if self.pipe is not None and self.pending:
            out = self.pipe.drain(self.pending)
            self.pending = 0
            return out
        out, self.buffer = self.buffer, b""
        return out

    def release(self) -> None:
        if self.pipe is not None:
            pipe_budget.give_back(self.pipe, clean=self.pending == 0)
            self.pipe = None


class Pump:
    """The two directions of one relay and what ends it; shared by both drivers."""

    def __init__(self, a: socket.socket, b: socket.socket, method: str) -> None:
        use_splice = method in ("auto", "splice") and hasattr(os, "splice")
        self.a, self.b = a, b
        self.started = time.monotonic()
        self.timeouts = (a.gettimeout(), b.gettimeout())
        a.setblocking(False)
        b.setblocking(False)
        self.ab = Direction(a, b, "a", "b", use_splice)
        self.ba = Direction(b, a, "b", "a", use_splice)

    def finished(self) -> bool:
        return self.ab.done and self.ba.done

    def result(self, ended: Ended) -> RelayResult:
        residue_ab, residue_ba = self.ab.residue(), self.ba.residue()
        self._restore()
        return RelayResult(self.ab.moved, self.ba.moved, self.ab.method, self.ba.method,
                           ended, time.monotonic() - self.started, residue_ab, residue_ba)

    def interrupted(self, exc: BaseException) -> None:
        """Stopped by *exc* from outside (a signal handler's, cancellation): pipes
        back, sockets restored, and *exc* told what had moved."""
        tell_interrupted(exc, self.result("interrupted"))

    def failure(self, failed: _SideFailed) -> RelayError:
        """Reset both sockets (the healthy one with a RST) and build the error."""
        exc = failed.exc
        err = exc.errno or errno.EIO
        residue_ab, residue_ba = self.ab.residue(), self.ba.residue()
        self._release()
        reset_pair(self.a, self.b, failed.side)
        return relay_failure(err, f"relay: side {failed.side}", failed.side,
                             (self.ab.moved, self.ba.moved), (residue_ab, residue_ba))

    def _release(self) -> None:
        self.ab.release()
        self.ba.release()

    def _restore(self) -> None:
        self._release()
        restore_timeouts((self.a, self.b), self.timeouts)


def relay(a: socket.socket, b: socket.socket, *, idle_timeout: float | None = None,
          method: str = "auto") -> RelayResult:
    """:func:`zerocopy.relay` as a Python poll loop (the checks are made already)."""
    pump = Pump(a, b, method)
    poller = select.poll()
    last_progress = time.monotonic()
    try:
        while not pump.finished():
            masks = _interest(pump)
            for fd in (a.fileno(), b.fileno()):
                if masks.get(fd):
                    poller.register(fd, masks[fd])
                else:
                    try:
                        poller.unregister(fd)
                    except KeyError:
                        pass
            timeout_ms = None
            if idle_timeout is not None:
                left = idle_timeout - (time.monotonic() - last_progress)
                if left <= 0:
                    return pump.result("idle")
                timeout_ms = max(1, int(left * 1000))
            events = poller.poll(timeout_ms)
            if _serve(pump, {fd: ev for fd, ev in events}):
                last_progress = time.monotonic()
    except _SideFailed as failed:
        raise pump.failure(failed) from failed.exc
    except BaseException as exc:
        pump.interrupted(exc)
        raise
    return pump.result("eof")


def _interest(pump: Pump) -> dict[int, int]:
    masks: dict[int, int] = {pump.a.fileno(): 0, pump.b.fileno(): 0}
    for direction in (pump.ab, pump.ba):
        if direction.wants_read():
            masks[direction.src.fileno()] |= select.POLLIN
        if direction.wants_write():
            masks[direction.dst.fileno()] |= select.POLLOUT
    return masks


def _serve(pump: Pump, ready: dict[int, int]) -> bool:
    """Run the directions whose sockets are ready; True if any byte or EOF moved.

    POLLHUP and POLLERR count as readable and writable: the system call then says
    what happened (EOF, ECONNRESET), so the error path stays one path."""
    progress = False
    for direction in (pump.ab, pump.ba):
        src_ev = ready.get(direction.src.fileno(), 0)
        if src_ev and direction.wants_read():
            progress |= direction.on_readable()
        dst_ev = ready.get(direction.dst.fileno(), 0)
        if dst_ev and direction.wants_write():
            progress |= direction.on_writable()
    return progress
