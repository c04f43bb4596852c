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
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ._types import Fallback, Method

__all__ = [
    "MethodDeclined",
    "TransferError",
    "UnsupportedTransfer",
    "ZeroCopyError",
    "error_from_errno",
    "transfer_error",
]


class ZeroCopyError(OSError):
    """Base class of every error zerocopy raises about a file descriptor.

    .. versionadded:: 0.1.0
    """


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


class MethodDeclined(Exception):
    """Internal: a method found, before moving a byte, that it cannot serve the pair.

    Raised by the method loops for conditions that carry no errno, such as
    ``copy_file_range`` returning 0 at the very start (procfs and sysfs files report a
    size of 0 and copy nothing; fixed in Linux 5.19, kernel commit 868f9f2f8e00).
    """

    def __init__(self, errno: int, reason: str) -> None:
        super().__init__(errno, reason)
        self.errno = errno
        self.reason = reason


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
        cls = type(kind.__name__, (kind, builtin), {"__module__": kind.__module__})
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
    return error_from_errno(_errno.ETIMEDOUT, detail)


def transfer_error(err: int, method: Method, transferred: int, residue: bytes = b"",
                   fallbacks: tuple[Fallback, ...] = ()) -> TransferError:
    """The TransferError for *method* failing with *err* after *transferred* bytes."""
    exc = error_from_errno(err, f"{method.value} after {transferred} bytes", kind=TransferError)
    exc.transferred = transferred
    exc.residue = residue
    exc.method = method
    exc.fallbacks = fallbacks
    return exc
