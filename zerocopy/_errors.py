"""The error tree, and the one function that turns an errno into an exception.

Our exception hierarchy::

    OSError
     └── ZeroCopyError                  anything zerocopy raises about an fd
          ├── UnsupportedTransfer       no method of the backend can serve this pair
          └── TransferError             an error after the plan started; carries
                                        .transferred and .residue

Every instance is *also* the builtin ``OSError`` subclass that Python itself would
raise for its errno, so ``except ConnectionResetError`` or ``except TimeoutError``
keeps working: a peer reset during a transfer raises an object that is both a
``TransferError`` and a ``ConnectionResetError``.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from ._types import Fallback, Method

__all__ = [
    "Interrupted",
    "MethodDeclined",
    "TransferError",
    "UnsupportedTransfer",
    "ZeroCopyError",
    "error_from_errno",
    "from_a_call",
    "from_a_wait",
    "from_the_caller",
    "is_method_error",
    "is_syscall_error",
    "mark_if_our_call",
    "raised_by_our_call",
    "note_interrupted",
    "transfer_error",
]


class ZeroCopyError(OSError):
    """Base class of every error zerocopy raises about a file descriptor.

    .. versionadded:: 0.1.0
    """

    def __reduce__(self) -> tuple[object, ...]:
        # An instance's class is made per errno (TransferError[BrokenPipeError]) and
        # cannot be found by name in another process: rebuild it from the public kind
        # and the errno there, then restore the attributes (.transferred, .residue,
        # notes).  Without this a ProcessPoolExecutor's future never gets the error.
        kind = type(self).__dict__.get("_zerocopy_kind", type(self))
        return (_rebuild, (kind, self.args), self.__dict__)


class UnsupportedTransfer(ZeroCopyError):
    """No method of the chosen backend can serve this pair of endpoints.

    ``fallbacks`` lists what each method tried said, in order.

    .. versionadded:: 0.1.0
    """

    fallbacks: tuple[Fallback, ...] = ()


class TransferError(ZeroCopyError):
    """A transfer failed; nothing already delivered is undone.

    ``transferred`` counts the bytes delivered to the destination.  ``residue`` holds
    the bytes read from a non-seekable source (socket, pipe) that could not be
    delivered: they are handed back, never dropped.  For a seekable source it is
    empty, because the source position is left just after the delivered bytes.
    ``method`` names the method that was running and ``fallbacks`` the methods that
    gave up before it.

    .. versionadded:: 0.1.0
    """

    transferred: int = 0
    residue: bytes = b""
    method: Method | None = None
    fallbacks: tuple[Fallback, ...] = ()


@runtime_checkable
class Interrupted(Protocol):
    """What an exception that stopped a transfer carries, whatever its type.

    ``TransferError`` has these attributes; so does an exception zerocopy did not
    raise but let through after a transfer started (``KeyboardInterrupt`` from Ctrl-C,
    ``asyncio.CancelledError``, the progress callback's own error), which is re-raised
    unchanged but for them and a note.  ``isinstance(exc, zerocopy.Interrupted)``
    tells (and narrows the type for a type checker)::

        except KeyboardInterrupt as exc:
            if isinstance(exc, zerocopy.Interrupted):
                print(exc.transferred, "bytes delivered;", len(exc.residue), "handed back")
            raise

    .. versionadded:: 0.1.0
    """

    #: bytes delivered to the destination before the transfer stopped
    transferred: int
    #: bytes consumed from a non-seekable source but not delivered (see TransferError)
    residue: bytes


class MethodDeclined(Exception):
    """Internal: a method cannot serve the pair, for a reason that carries no errno
    (a backend without the method; ``copy_file_range`` copying nothing at the start,
    see ``zerocopy._engine.driver``)."""

    def __init__(self, errno: int, reason: str) -> None:
        super().__init__(errno, reason)
        self.errno = errno
        self.reason = reason


def _rebuild(kind: type[ZeroCopyError], args: tuple[object, ...]) -> ZeroCopyError:
    """The unpickling half of :meth:`ZeroCopyError.__reduce__`."""
    err = args[0] if args and isinstance(args[0], int) else 0
    cls = _mixed_class(kind, _builtin_class(err) if err else OSError)
    return cls(*args)


_E = TypeVar("_E", bound=ZeroCopyError)
_mixed: dict[tuple[type[ZeroCopyError], type[OSError]], type[ZeroCopyError]] = {}


def _builtin_class(err: int) -> type[OSError]:
    # OSError's constructor already knows Python's errno -> subclass table (PEP 3151).
    return type(OSError(err, ""))


def _mixed_class(kind: type[_E], builtin: type[OSError]) -> type[_E]:
    if builtin is OSError or issubclass(kind, builtin):
        return kind
    key = (kind, builtin)
    cls = _mixed.get(key)
    if cls is None:
        cls = type(kind.__name__, (kind, builtin),
                   {"__module__": kind.__module__, "_zerocopy_kind": kind})
        cls.__qualname__ = f"{kind.__qualname__}[{builtin.__name__}]"
        _mixed[key] = cls
    return cls  # type: ignore[return-value]


def error_from_errno(
    err: int, detail: str = "", *, kind: type[_E] = ZeroCopyError,  # type: ignore[assignment]
) -> _E:
    """Return (not raise) the exception for *err*: an instance of *kind* that is also
    the builtin ``OSError`` subclass for that errno.  *detail* names what failed."""
    message = os.strerror(err) if err else "failed"
    if detail:
        message = f"{detail}: {message}"
    cls = _mixed_class(kind, _builtin_class(err) if err else OSError)
    return cls(err, message)


def timeout_error(detail: str) -> ZeroCopyError:
    """The error for a wait that outlived the socket timeout or the deadline."""
    exc: ZeroCopyError = error_from_errno(_errno.ETIMEDOUT, detail)
    from_a_wait(exc)
    return exc


# Where an OSError of ours came from, set on the instance (an attribute, not a class:
# the builtin subclass Python picked for the errno stays as it is, and pickling keeps
# it with the instance's __dict__).  An OSError without it is not ours: a signal
# handler or the progress callback raised it (issue 11).
_ORIGIN = "_zerocopy_origin"
_CALL = "call"   # a method's system call (sendfile, splice, copy_file_range, read, write)
_WAIT = "wait"   # a wait (poll) or a limit (a timeout, the deadline)
_CALLER = "caller"  # raised by the caller's code we called (the progress callback)


def _mark(exc: OSError, origin: str) -> OSError:
    # The first mark set stays: a wait's error re-raised through a call keeps "wait".
    if not hasattr(exc, _ORIGIN):
        setattr(exc, _ORIGIN, origin)
    return exc


def from_a_call(exc: OSError) -> OSError:
    """Mark *exc* as the failure of a method's system call: only such an error can
    mean "this method can't" (the fallback rules).  A mark already set stays.
    Returns *exc*."""
    return _mark(exc, _CALL)


def from_a_wait(exc: OSError) -> OSError:
    """Mark *exc* as the failure of a wait (poll) or a limit: ours, but never a reason
    to fall back (poll's EAGAIN means memory ran short, not that another method would
    do better).  A mark already set stays.  Returns *exc*."""
    return _mark(exc, _WAIT)


def from_the_caller(exc: OSError) -> OSError:
    """Mark *exc* as raised by the caller's code that zerocopy called (the progress
    callback), even when no frame of it shows in the traceback (a C function such
    as ``os.sysconf`` given as the callback).  A mark already set stays.  Returns
    *exc*."""
    return _mark(exc, _CALLER)


def raised_by_our_call(exc: BaseException) -> bool:
    """*exc* was raised by a call zerocopy's own code made (an ``os`` function, the
    fault seam), not by a Python function that ran meanwhile: a signal handler runs
    inside the interrupted ``os`` call (PEP 475), and the progress callback is called
    by us, so either one's frame is then the innermost of the traceback."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith("zerocopy.")


def mark_if_our_call(exc: OSError) -> None:
    """Mark *exc* as a method's system call failing when our own code's call raised
    it (:func:`raised_by_our_call`); a signal handler's or the progress callback's
    error stays unmarked, so it stays the caller's."""
    if raised_by_our_call(exc):
        from_a_call(exc)


def is_syscall_error(exc: BaseException) -> bool:
    """*exc* is zerocopy's own report of a failed system call, wait or limit: it
    becomes a TransferError.  Anything else (Ctrl-C, the progress callback's own
    error, a signal handler's ``raise TimeoutError()`` or even ``raise
    OSError(EINVAL, ...)``: issue 11) is the caller's, and is re-raised as it is, with
    the counts attached (:func:`note_interrupted`).  The core and the Python backends
    mark their errors (:func:`from_a_call`, :func:`from_a_wait`); errors built by
    :func:`error_from_errno` are ours by their class."""
    if isinstance(exc, (MethodDeclined, ZeroCopyError)):
        return True
    return (isinstance(exc, OSError) and exc.errno is not None
            and getattr(exc, _ORIGIN, None) in (_CALL, _WAIT))


def is_method_error(exc: BaseException) -> bool:
    """*exc* is a method's own failure (its system call, or a decline): the only kind
    the fallback rules may take for "this method can't"."""
    return isinstance(exc, MethodDeclined) or getattr(exc, _ORIGIN, None) == _CALL


def note_interrupted(exc: BaseException, transferred: int, residue: bytes) -> BaseException:
    """Attach the counts to an exception that stopped a transfer but is not zerocopy's
    (KeyboardInterrupt, CancelledError, the progress callback's): ``.transferred``,
    ``.residue`` and a note, so nothing delivered or consumed is lost.  Returns *exc*."""
    exc.transferred = transferred  # type: ignore[attr-defined]
    exc.residue = residue  # type: ignore[attr-defined]
    exc.add_note(f"zerocopy: {transferred} bytes delivered before the transfer stopped; "
                 f"{len(residue)} bytes handed back as .residue")
    return exc


def transfer_error(err: int, method: Method, transferred: int, residue: bytes = b"",
                   fallbacks: tuple[Fallback, ...] = ()) -> TransferError:
    """The TransferError for *method* failing with *err* after *transferred* bytes."""
    exc = error_from_errno(err, f"{method.value} after {transferred} bytes", kind=TransferError)
    exc.transferred = transferred
    exc.residue = residue
    exc.method = method
    exc.fallbacks = fallbacks
    return exc
