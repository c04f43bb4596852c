"""Explicit fd ownership (docs/ownership.md): ``OwnedFd`` closes, ``BorrowedFd`` never does.

The hazard they remove: fd numbers are reused at once.  If one thread closes fd 7
while another is still writing to it, the next ``open()`` anywhere in the process
may get 7, and the writer's bytes land in that unrelated file.  A plain ``int`` (or
``socket.close()`` on a socket another thread transfers on) cannot prevent it.

An ``OwnedFd`` counts the transfers using it (a use count under a lock, as Go's
``internal/poll`` fdMutex does).  A transfer pins its endpoints before it classifies
them and unpins them after it restored positions.  ``close()`` from another thread
while the count is non-zero marks the fd closing and returns at once; the last
transfer to let go closes it.  So the number cannot be reused under a running
transfer.

A deferred close also asks the transfer to stop (it sets ``Job.stop``): the transfer
looks after each chunk and raises ``TransferError`` (``errno.ECANCELED``, with ``.transferred``) instead of
starting another one.  It never interrupts a system call in progress: a transfer
blocked on a socket or pipe with no data or no room stays blocked until its
``timeout=`` or the peer moves, because only ``shutdown()`` could wake it and shutting
down a connection (shared with dups and forked children) is the owner's decision,
not ours.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeAlias

from ._errors import error_from_errno

if TYPE_CHECKING:
    from ._backends.job import Job

__all__ = ["BorrowedFd", "FdLike", "HasFileno", "OwnedFd", "Pins", "pinned"]


class HasFileno(Protocol):
    """An object with a ``fileno()`` method: a socket, a file object, a pipe end."""

    def fileno(self) -> int: ...


#: An fd as zerocopy takes it: an int, or an object with ``fileno()``.
FdLike: TypeAlias = int | HasFileno
_Path: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"


def _check_fd(fd: object) -> int:
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"expected an int file descriptor, got {type(fd).__name__}")
    if fd < 0:
        raise ValueError(f"invalid file descriptor {fd}")
    return fd


def _fileno_of(obj: FdLike) -> int:
    if isinstance(obj, int) and not isinstance(obj, bool):
        return _check_fd(obj)
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected an fd or an object with fileno(), got {type(obj).__name__}")
    return _check_fd(fileno())


def _sync_python_buffers(obj: object) -> None:
    """Before a dup bypasses *obj*'s Python buffer: write out pending bytes, and move a
    seekable reader's fd back to its logical position (drops its read-ahead)."""
    if isinstance(obj, (io.BufferedWriter, io.BufferedRandom)):
        obj.flush()
    if isinstance(obj, (io.BufferedReader, io.BufferedRandom)) and obj.seekable():
        obj.seek(obj.tell())


class OwnedFd:
    """A file descriptor that this object owns and closes exactly once.

    ``close()`` is idempotent; ``with OwnedFd(fd) as f:`` closes on exit; an instance
    collected while open emits ``ResourceWarning`` and closes the fd, like a file.
    While transfers use it, ``close()`` is deferred until the last one lets go.
    """

    __slots__ = ("__weakref__", "_closing", "_fd", "_jobs", "_lock", "_users")

    def __init__(self, fd: int) -> None:
        self._fd = _check_fd(fd)
        self._lock = threading.Lock()
        self._users = 0
        self._closing = False
        #: the running transfers pinning this fd, asked to stop by a deferred close
        self._jobs: list[Job] = []

    @classmethod
    def dup(cls, obj: FdLike) -> OwnedFd:
        """Own a duplicate (``os.dup``, close-on-exec) of *obj*'s fd.

        The safe way to hand a transfer an fd that another thread might close: the
        duplicate keeps the open file (or connection) alive until it is closed too.
        A buffered writer is flushed and a seekable buffered reader re-synced first.
        """
        _sync_python_buffers(obj)
        return cls(os.dup(_fileno_of(obj)))

    @classmethod
    def open(cls, path: _Path, flags: int = os.O_RDONLY, mode: int = 0o666, *,
             dir_fd: int | None = None) -> OwnedFd:
        """``os.open(path, flags, mode)`` (close-on-exec), owned."""
        return cls(os.open(path, flags, mode, dir_fd=dir_fd))

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called (even while the real close waits for a
        transfer to let go) or the fd was detached."""
        return self._fd < 0 or self._closing

    def fileno(self) -> int:
        """The fd number; ValueError once closed."""
        if self._fd < 0 or self._closing:
            raise ValueError(f"I/O operation on closed {type(self).__name__}")
        return self._fd

    def borrow(self) -> BorrowedFd:
        """A :class:`BorrowedFd` naming this fd; transfers through it pin this owner."""
        self.fileno()  # refuse to lend a closed fd
        return BorrowedFd(self)

    def close(self) -> None:
        """Close the fd, now or, while transfers use it, when the last one lets go.

        Idempotent.  The ``OSError`` of an immediate close is raised; that of a
        deferred close is reported through ``sys.unraisablehook`` by the thread
        that does it.
        """
        with self._lock:
            if self._fd < 0 or self._closing:
                return
            self._closing = True
            if self._users:
                for job in self._jobs:
                    job.stop = _closed_under_transfer(self)
                return  # deferred: _unpin closes it
            fd, self._fd = self._fd, -1
        os.close(fd)

    def detach(self) -> int:
        """Stop owning the fd and return it (it stays open).  RuntimeError while a
        transfer uses it: the transfer's safety would silently become the caller's."""
        with self._lock:
            if self._users:
                raise RuntimeError(f"{self!r} is in use by {self._users} transfer(s)")
            fd = self.fileno()
            self._fd = -1
            return fd

    def _pin(self) -> int:
        """Count one more user; the fd stays open until the matching ``_unpin``."""
        with self._lock:
            fd = self.fileno()
            self._users += 1
            return fd

    def _watch(self, job: Job) -> None:
        with self._lock:
            self._jobs.append(job)

    def _unwatch(self, job: Job) -> None:
        with self._lock:
            self._jobs.remove(job)

    def _unpin(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users or not self._closing or self._fd < 0:
                return
            fd, self._fd = self._fd, -1
        try:
            os.close(fd)
        except OSError as exc:
            # Not the transfer's error, and the thread that asked is gone: report it
            # the way a failing close in a finalizer is reported.
            sys.unraisablehook(_Unraisable(exc, f"deferred close of fd {fd}", self))

    def __enter__(self) -> OwnedFd:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # No transfer can be using it: a pin holds a reference to this object.
        fd = getattr(self, "_fd", -1)  # unset if __init__ refused its argument
        if fd < 0:
            return
        if not self._closing:
            try:
                warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2,
                              source=self)
            except Exception:  # noqa: BLE001 - interpreter shutdown: no warnings module
                pass
        self._fd = -1
        with contextlib.suppress(OSError):
            os.close(fd)

    def __reduce__(self) -> str:
        raise TypeError(f"cannot pickle {type(self).__name__}: an fd number means "
                        "nothing in another process")

    def __repr__(self) -> str:
        name = f"zerocopy.{type(self).__name__}"
        if self._fd < 0:
            return f"<{name} closed>"
        if self._closing:
            return f"<{name} fd={self._fd} closing after {self._users} transfer(s)>"
        return f"<{name} fd={self._fd}>"


class _Unraisable:
    """The argument ``sys.unraisablehook`` expects."""

    def __init__(self, exc: BaseException, message: str, obj: object) -> None:
        self.exc_type: type[BaseException] = type(exc)
        self.exc_value: BaseException | None = exc
        self.exc_traceback: TracebackType | None = exc.__traceback__
        self.err_msg: str | None = f"Exception ignored in {message}"
        self.object: object = obj


class BorrowedFd:
    """Names a file descriptor someone else owns; zerocopy never closes it.

    Wraps an int, an object with ``fileno()`` (kept referenced, its Python buffers
    honoured by ``transfer``), or an :class:`OwnedFd` (then transfers pin the owner).
    ``close()`` (or leaving a ``with`` block) ends the borrow: the fd stays open,
    this object stops naming it.
    """

    __slots__ = ("_released", "_target")

    def __init__(self, target: FdLike | OwnedFd | BorrowedFd) -> None:
        if isinstance(target, BorrowedFd):
            target = target._owner_or_target()
        if isinstance(target, int):
            _check_fd(target)
        elif not callable(getattr(target, "fileno", None)):
            raise TypeError(f"expected an fd or an object with fileno(), "
                            f"got {type(target).__name__}")
        self._target: FdLike | OwnedFd = target
        self._released = False

    def _owner_or_target(self) -> FdLike | OwnedFd:
        if self._released:
            raise ValueError("I/O operation on a released BorrowedFd")
        return self._target

    @property
    def owner(self) -> OwnedFd | None:
        """The :class:`OwnedFd` lending the fd, if it is one."""
        return self._target if isinstance(self._target, OwnedFd) else None

    @property
    def closed(self) -> bool:
        """True once the borrow ended or the owner (when known) closed the fd."""
        if self._released:
            return True
        target = self._target
        if isinstance(target, int):
            return False  # nobody here can know; fstat would only say "some file"
        try:
            return target.fileno() < 0  # a closed socket says -1
        except (ValueError, OSError):  # a closed file or OwnedFd raises
            return True

    def fileno(self) -> int:
        """The fd number; ValueError once the borrow ended or the owner closed it."""
        return _fileno_of(self._owner_or_target())

    def close(self) -> None:
        """End the borrow (idempotent); the fd itself is left open."""
        self._released = True

    def __enter__(self) -> BorrowedFd:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        name = f"zerocopy.{type(self).__name__}"
        if self._released:
            return f"<{name} released>"
        target = self._target
        if isinstance(target, int):
            return f"<{name} fd={target}>"
        return f"<{name} of {target!r}>"


class Pins:
    """The :class:`OwnedFd` owners one transfer pinned, and what it should use instead
    of the objects it was given."""

    def __init__(self) -> None:
        self.owners: list[OwnedFd] = []
        self.watched: list[tuple[OwnedFd, Job]] = []

    def take(self, obj: object) -> object:
        """Pin the owner behind *obj*, if any; return what the endpoint layer should
        classify (the pinned fd number, or the borrowed object itself)."""
        if isinstance(obj, BorrowedFd):
            obj = obj._owner_or_target()
        if isinstance(obj, OwnedFd):
            fd = obj._pin()
            self.owners.append(obj)
            return fd
        return obj

    def release(self) -> None:
        """Unpin in reverse order; the last user of a closing owner closes it."""
        while self.watched:
            owner, job = self.watched.pop()
            owner._unwatch(job)
        while self.owners:
            self.owners.pop()._unpin()

    def stop_on_close(self, job: Job) -> None:
        """Ask *job* to stop after its current chunk if an owner is closed meanwhile
        (until :meth:`release`); nothing extra when no owner is pinned."""
        if not self.owners:
            return
        job.stoppable = True
        for owner in self.owners:
            owner._watch(job)
            self.watched.append((owner, job))
            if owner._closing:  # closed between the pin and now
                job.stop = _closed_under_transfer(owner)


def _closed_under_transfer(owner: OwnedFd) -> OSError:
    exc: OSError = error_from_errno(errno.ECANCELED, "transfer stopped")
    exc.add_note(f"zerocopy: {owner!r} was closed by another thread; the transfer "
                 "stopped after the chunk in flight and the fd was closed when it let go")
    return exc


@contextlib.contextmanager
def pinned(src: object, dst: object) -> Iterator[tuple[object, object, Pins]]:
    """Pin the owners behind *src* and *dst* for a ``with`` block; yields what to
    classify instead of each, and the :class:`Pins` (for :meth:`Pins.stop_on_close`)."""
    pins = Pins()
    try:
        yield pins.take(src), pins.take(dst), pins
    finally:
        pins.release()
