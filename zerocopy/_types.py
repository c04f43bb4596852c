"""The value types of the public API: methods, endpoint kinds, results and plans."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EndpointKind", "Fallback", "Method", "Plan", "PlanStep", "TransferResult"]


class Method(enum.Enum):
    """How bytes were (or would be) moved: :attr:`TransferResult.method`,
    :attr:`PlanStep.method`, :attr:`Fallback.method`.

    The value is the word ``ZEROCOPY_DISABLE`` takes for the method.
    """

    #: ``copy_file_range(2)``: file to file inside the kernel (may reflink).
    COPY_FILE_RANGE = "copy_file_range"
    #: ``sendfile(2)``: from a file's page cache to any fd.
    SENDFILE = "sendfile"
    #: ``splice(2)``: directly when one side is a pipe, else through a pipe of ours.
    SPLICE = "splice"
    #: ``read(2)``/``write(2)`` through one reused buffer: works for every fd.
    READ_WRITE = "read_write"


class EndpointKind(enum.Enum):
    """What an endpoint is, as classified from ``fstat`` and socket options
    (:attr:`Plan.src`, :attr:`Plan.dst`); the kinds decide the methods tried."""

    FILE = "file"  #: a regular file (including procfs and sysfs files)
    SOCKET = "socket"  #: a stream socket (TCP, Unix)
    PIPE = "pipe"  #: a pipe or FIFO
    OTHER = "other"  #: anything else: tty, character or block device, eventfd, ...


@dataclass(frozen=True, slots=True)
class Fallback:
    """A method that gave up, and why: before moving a byte (``offset`` 0), or part
    way through a seekable source, where the next method resumed at exactly the byte
    it stopped at.

    Listed in :attr:`TransferResult.fallbacks`, :attr:`TransferError.fallbacks` and
    :attr:`UnsupportedTransfer.fallbacks`; the errnos that mean "this method cannot
    serve this pair" are in the transfer contract (docs/transfer.md, "Errors and
    fallback").
    """

    method: Method
    #: the errno it failed with, or 0 when it declined without one
    errno: int
    reason: str
    #: bytes of this transfer already delivered when it gave up
    offset: int = 0


@dataclass(frozen=True, slots=True)
class TransferResult:
    """What a transfer did: returned by :func:`transfer` and :func:`atransfer`.

    ``transferred < count`` only with ``eof`` true: the source ended first.  An error
    never returns a result; it raises :class:`TransferError`, which carries the same
    count as ``transferred``.
    """

    #: bytes delivered to the destination
    transferred: int
    #: the method that delivered them (the last one tried)
    method: Method
    #: the backend that ran it: ``"native"``, ``"os"`` or ``"portable"``
    backend: str
    #: the source reported end of file (always true when ``count`` was None)
    eof: bool
    #: methods that gave up before ``method``, in order
    fallbacks: tuple[Fallback, ...] = ()


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One method of a plan and why it is there (or why it was left out)."""

    method: Method
    reason: str
    #: splice only: through a pipe of zerocopy's own (two splices per chunk), because
    #: neither side is a pipe; False for a direct splice and for every other method
    via_pipe: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """The methods ``transfer`` would try for a pair, in order, without moving a byte."""

    backend: str
    src: EndpointKind
    dst: EndpointKind
    #: the methods to try, best first; the last is the one that cannot decline
    steps: tuple[PlanStep, ...]
    #: methods left out for this pair, with the reason (kill switch, O_APPEND, ...)
    skipped: tuple[PlanStep, ...] = ()

    @property
    def methods(self) -> tuple[Method, ...]:
        """The methods to try, in order."""
        return tuple(step.method for step in self.steps)


def _slot_setter(name: str) -> Callable[[TransferResult, object], None]:
    setter: Callable[[TransferResult, object], None] = getattr(TransferResult, name).__set__
    return setter


_new_result = TransferResult.__new__
_set_transferred = _slot_setter("transferred")
_set_method = _slot_setter("method")
_set_backend = _slot_setter("backend")
_set_eof = _slot_setter("eof")
_set_fallbacks = _slot_setter("fallbacks")


def fast_result(transferred: int, method: Method, backend: str, eof: bool) -> TransferResult:
    """A TransferResult without fallbacks, built through the slots directly: the frozen
    dataclass __init__ (object.__setattr__ per field) costs a microsecond, which is a
    sixth of a small sendfile."""
    result = _new_result(TransferResult)
    _set_transferred(result, transferred)
    _set_method(result, method)
    _set_backend(result, backend)
    _set_eof(result, eof)
    _set_fallbacks(result, ())
    return result
