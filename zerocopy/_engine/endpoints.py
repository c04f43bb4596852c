"""Endpoints: resolve what the caller passed to an fd, classify it once, refuse what
cannot work before a byte moves, and keep Python-level buffers honest.

Python file objects may hold bytes the kernel does not know about: a buffered
reader's read-ahead (its ``tell()`` is behind the fd's position) and a buffered
writer's pending writes.  Zero-copy must not reorder bytes relative to them, so a
writer is flushed first, a seekable reader is re-synced to its logical position, and
a non-seekable reader's read-ahead is delivered before the kernel takes over.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import stat
import sys
import tempfile
from dataclasses import dataclass

from .._errors import error_from_errno
from .._types import EndpointKind

__all__ = ["Endpoint", "classify", "destination", "set_position", "source"]

_BUFFERED = (io.BufferedReader, io.BufferedWriter, io.BufferedRandom)
# io objects whose fileno() is where their bytes really come from or go to.
_FD_BACKED = (io.FileIO, socket.SocketIO, *_BUFFERED)


@dataclass(slots=True, eq=False)
class Endpoint:
    """One side of a transfer, classified once."""

    obj: object
    fd: int
    kind: EndpointKind
    seekable: bool
    #: O_APPEND: every write goes to the end, whatever offset is asked
    append: bool
    blocking: bool
    #: the longest single wait (a socket's timeout), or -1
    wait: float
    #: the Python buffer layered over the fd, when there is one
    buffered: io.BufferedIOBase | None
    identity: tuple[int, int]
    size: int

    @property
    def pollable(self) -> bool:
        """EAGAIN here means "wait": not so for regular files (see Job.src_pollable)."""
        return self.kind is not EndpointKind.FILE

    def same_file(self, other: Endpoint) -> bool:
        """Both are the same regular file (a copy into itself)."""
        return self.kind is EndpointKind.FILE and self.identity == other.identity

    def position(self) -> int:
        """The logical position (a buffered object's ``tell()``), synced to the fd."""
        if self.buffered is not None:
            pos = self.buffered.tell()
            self.buffered.seek(pos)  # drops read-ahead: the fd now sits at ``pos``
            return pos
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def set_position(self, pos: int) -> None:
        """Move to *pos*, through the Python buffer when there is one."""
        set_position(self.fd, self.buffered, pos)

    def resync(self) -> None:
        """After the kernel wrote behind a buffered writer, align it with the fd."""
        if self.buffered is not None and self.seekable:
            self.buffered.seek(os.lseek(self.fd, 0, os.SEEK_CUR))

    def take_read_ahead(self, limit: int) -> bytes:
        """Bytes a non-seekable buffered reader already pulled from the fd (delivered
        first, so none are lost or reordered).  Never blocks."""
        reader = self.buffered
        if reader is None or self.seekable or not isinstance(reader, (io.BufferedReader,
                                                                      io.BufferedRandom)):
            return b""
        # With the buffer non-empty, peek() returns all of it without a system call
        # (with it empty, it makes one raw read, which O_NONBLOCK keeps from
        # blocking).  All of it, not a fixed slice: a buffer bigger than the slice
        # (open(fd, buffering=1 << 20)) would keep bytes the kernel then reads past.
        was_blocking = os.get_blocking(self.fd)
        try:
            if was_blocking:
                os.set_blocking(self.fd, False)
            ahead = reader.peek()
            return reader.read(min(limit, len(ahead))) if ahead else b""
        except BlockingIOError:
            return b""
        finally:
            if was_blocking:
                os.set_blocking(self.fd, True)


def set_position(fd: int, buffered: io.BufferedIOBase | None, pos: int) -> None:
    """Leave a seekable endpoint at *pos*, through its Python buffer when it has one
    (the fast path in the core calls this too)."""
    if buffered is not None:
        buffered.seek(pos)
    else:
        os.lseek(fd, pos, os.SEEK_SET)


def _unwrap(obj: object) -> object:
    if isinstance(obj, tempfile._TemporaryFileWrapper):  # NamedTemporaryFile & co.
        return obj.file
    return obj


def _resolve_fd(obj: object, role: str) -> int:
    if isinstance(obj, bool):
        raise TypeError(f"{role}: expected an fd or an object with fileno(), got a bool")
    if isinstance(obj, int):
        fd = obj
    else:
        fileno = getattr(obj, "fileno", None)
        if fileno is None:
            raise TypeError(f"{role}: expected an fd or an object with fileno(), "
                            f"got {type(obj).__name__}")
        try:
            fd = fileno()
        except (ValueError, OSError) as exc:  # closed file, BytesIO, ...
            raise ValueError(f"{role}: {type(obj).__name__} has no usable file "
                             f"descriptor ({exc})") from None
    if fd < 0:
        raise ValueError(f"{role}: invalid file descriptor {fd}")
    return fd


def _check_object(obj: object, role: str) -> io.BufferedIOBase | None:
    if isinstance(obj, io.TextIOBase):
        raise ValueError(f"{role}: {type(obj).__name__} is a text-mode file; "
                         "open it in binary mode or pass its .buffer")
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(obj, ssl.SSLSocket):
        raise ValueError(f"{role}: TLS sockets are refused: bytes written to the fd "
                         "would bypass encryption")
    if isinstance(obj, io.IOBase) and not isinstance(obj, _FD_BACKED):
        raise ValueError(f"{role}: {type(obj).__name__}.fileno() is not where its bytes "
                         "are (compressed or decoded streams); pass the underlying file")
    return obj if isinstance(obj, _BUFFERED) else None


def _kind(fd: int, st: os.stat_result, obj: object, role: str) -> EndpointKind:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return EndpointKind.FILE
    if stat.S_ISFIFO(mode):
        return EndpointKind.PIPE
    if stat.S_ISDIR(mode):
        raise error_from_errno(errno.EISDIR, f"{role}: fd {fd} is a directory")
    if stat.S_ISSOCK(mode):
        if isinstance(obj, socket.socket):
            sock_type = obj.type
        else:
            probe = socket.socket(fileno=fd)  # reads SO_TYPE; detach keeps the fd open
            sock_type = probe.type
            probe.detach()
        if sock_type != socket.SOCK_STREAM:
            raise ValueError(f"{role}: only stream sockets are supported, "
                             f"fd {fd} is {sock_type!r}")
        return EndpointKind.SOCKET
    return EndpointKind.OTHER


def _is_seekable(fd: int, kind: EndpointKind) -> bool:
    if kind is EndpointKind.FILE:
        return True
    if kind is not EndpointKind.OTHER:
        return False
    try:
        pos = os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return False
    # lseek succeeds on fds that pread refuses (eventfd, timerfd, signalfd, epoll:
    # noop_llseek without FMODE_PREAD), and a seekable source is read at explicit
    # offsets.  ksys_pread64 checks FMODE_PREAD before anything is read, so a 0-byte
    # pread's ESPIPE says "a stream" (issue 11).
    try:
        os.pread(fd, 0, pos)
    except OSError as exc:
        return exc.errno != errno.ESPIPE
    return True


def classify(obj: object, role: str, want_write: bool) -> Endpoint:
    obj = _unwrap(obj)
    buffered = _check_object(obj, role)
    fd = _resolve_fd(obj, role)
    try:
        st = os.fstat(fd)
        flags = _fcntl_getfl(fd)
    except OSError as exc:
        raise error_from_errno(exc.errno or errno.EBADF, f"{role}: fd {fd}") from None
    if flags & getattr(os, "O_PATH", 0):
        # open(2): an O_PATH fd "cannot be read or written"; say so before any call.
        raise error_from_errno(errno.EBADF, f"{role}: fd {fd} is an O_PATH fd (it can be "
                               "neither read nor written)")
    kind = _kind(fd, st, obj, role)
    access = flags & os.O_ACCMODE
    if access != os.O_RDWR and access != (os.O_WRONLY if want_write else os.O_RDONLY):
        need = "writing" if want_write else "reading"
        raise error_from_errno(errno.EBADF, f"{role}: fd {fd} is not open for {need}")
    wait = -1.0
    if isinstance(obj, socket.socket):
        timeout = obj.gettimeout()
        wait = -1.0 if not timeout else timeout  # 0.0: non-blocking, wait unbounded
    return Endpoint(
        obj=obj, fd=fd, kind=kind, seekable=_is_seekable(fd, kind),
        append=bool(flags & os.O_APPEND), blocking=not flags & os.O_NONBLOCK,
        wait=wait, buffered=buffered, identity=(st.st_dev, st.st_ino), size=st.st_size,
    )


def _fcntl_getfl(fd: int) -> int:
    import fcntl  # not on Windows; imported lazily so the package still imports there

    return fcntl.fcntl(fd, fcntl.F_GETFL)


def source(obj: object) -> Endpoint:
    """Classify *obj* as a source: it must be readable."""
    return classify(obj, "src", want_write=False)


def destination(obj: object) -> Endpoint:
    """Classify *obj* as a destination: it must be writable.  Buffered writes are
    flushed so the kernel's bytes land after them."""
    end = classify(obj, "dst", want_write=True)
    flush = getattr(end.obj, "flush", None)
    if end.buffered is not None and flush is not None:
        flush()
    return end
