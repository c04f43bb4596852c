"""Endpoint rigs for the behavioural suite: real files, pipes, sockets and devices.

A :class:`Rig` builds one source and one destination of the named kinds, feeds a
stream source from a thread, drains a stream destination into another, and after
the transfer reports what the destination holds, where each file position is, and
what a stream source still had unread.  Everything is torn down by ``close()``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import pty
import socket
import threading
import tty
from pathlib import Path

from zerocopy import Method

from .conftest import Reader, Writer, pattern, tcp_pair, unix_pair

#: kinds of source: a regular file, a pipe, stream sockets, ``/dev/zero`` (never
#: ends: used with ``count``) and a ``/proc`` file (its size is whatever it is)
SOURCES = ("file", "pipe", "tcp", "unix", "zero", "proc")
#: kinds of destination: ``null`` is ``/dev/null``, ``pty`` a raw pseudo-terminal
DESTINATIONS = ("file", "pipe", "tcp", "unix", "null", "pty")
STREAMS = ("pipe", "tcp", "unix")
#: what a destination file holds before the transfer (so overwrites show)
DST_PREFILL = b"#####"
PROC_SOURCE = "/proc/self/environ"  # not a seq_file: sendfile refuses it (EINVAL)


@functools.cache
def data(size: int) -> bytes:
    """The bytes a source of *size* bytes holds (cached: the big ones cost to make)."""
    return pattern(size, seed=size)


def proc_bytes() -> bytes:
    """What :data:`PROC_SOURCE` reads as, read the ordinary way."""
    with open(PROC_SOURCE, "rb") as f:
        return f.read()


def kernel_method(src: str, dst: str) -> Method:
    """The method the decision table ends on for a shape, when every method works."""
    if src == "file":
        return Method.COPY_FILE_RANGE if dst == "file" else Method.SENDFILE
    if src == "proc":
        return Method.READ_WRITE  # copy_file_range says EXDEV, sendfile EINVAL
    if src == "zero" and dst != "pipe":
        return Method.READ_WRITE  # a character device: only a pipe lets splice in
    return Method.SPLICE


def grow_pipe(fd: int, size: int = 1 << 20) -> None:
    """Make a pipe bigger when the user's quota allows (fewer thread handoffs)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


class PtyReader(threading.Thread):
    """Reads a pty master until *want* bytes arrived or the slave side is gone."""

    def __init__(self, fd: int, want: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.want = want
        self.chunks: list[bytes] = []
        self.got = 0

    def run(self) -> None:
        while self.got < self.want:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError as exc:  # EIO: the slave was closed (Linux pty semantics)
                if exc.errno != errno.EIO:
                    raise
                return
            if not chunk:
                return
            self.chunks.append(chunk)
            self.got += len(chunk)

    def result(self, timeout: float = 60) -> bytes:
        self.join(timeout)
        assert not self.is_alive(), "pty reader did not get its bytes"
        return b"".join(self.chunks)


class Rig:
    """One source and one destination, ready for ``zerocopy.transfer(rig.src, rig.dst)``."""

    def __init__(self, scratch: Path, src_kind: str, dst_kind: str, content: bytes, *,
                 src_pos: int = 0, dst_pos: int = 0, expect_out: int = 0) -> None:
        self.stack = contextlib.ExitStack()
        self.src_kind = src_kind
        self.dst_kind = dst_kind
        self.content = content
        self.scratch = scratch
        self.src_fd = -1
        self.dst_fd = -1
        self._src_stream: socket.socket | int | None = None
        self._writer: Writer | None = None
        self._reader: Reader | PtyReader | None = None
        self._dst_close: socket.socket | int | None = None
        self.dst_path: Path | None = None
        try:
            self.src: object = self._make_src(src_pos)
            self.dst: object = self._make_dst(dst_pos, expect_out)
        except BaseException:
            self.stack.close()
            raise

    # -- sources ---------------------------------------------------------------------
    def _make_src(self, pos: int) -> object:
        kind = self.src_kind
        if kind == "file":
            path = self.scratch / "src"
            path.write_bytes(self.content)
            f = self.stack.enter_context(open(path, "rb", buffering=0))
            f.seek(pos)
            self.src_fd = f.fileno()
            return f
        if kind in ("zero", "proc"):
            f = self.stack.enter_context(open("/dev/zero" if kind == "zero" else PROC_SOURCE,
                                              "rb", buffering=0))
            self.src_fd = f.fileno()
            return f
        if kind == "pipe":
            r, w = os.pipe()
            grow_pipe(w)
            self.stack.callback(self._close_fd, r)
            self._writer = Writer(w, self.content)
            self.src_fd = r
            self._src_stream = r
        else:
            feed, sock = tcp_pair() if kind == "tcp" else unix_pair()
            self.stack.enter_context(sock)
            self.stack.enter_context(feed)
            self._writer = Writer(feed, self.content)
            self.src_fd = sock.fileno()
            self._src_stream = sock
        self._writer.start()
        return self._src_stream

    # -- destinations ----------------------------------------------------------------
    def _make_dst(self, pos: int, expect_out: int) -> object:
        kind = self.dst_kind
        if kind == "file":
            self.dst_path = self.scratch / "dst"
            self.dst_path.write_bytes(DST_PREFILL)
            f = self.stack.enter_context(open(self.dst_path, "r+b", buffering=0))
            f.seek(pos)
            self.dst_fd = f.fileno()
            return f
        if kind == "null":
            f = self.stack.enter_context(open(os.devnull, "wb", buffering=0))
            self.dst_fd = f.fileno()
            return f
        if kind == "pty":
            master, slave = pty.openpty()
            tty.setraw(slave)  # no output processing: bytes pass unchanged
            self.stack.callback(self._close_fd, master)
            self.stack.callback(self._close_fd, slave)
            self._reader = PtyReader(master, expect_out)
            self._reader.start()
            self.dst_fd = slave
            self._dst_close = slave
            return slave
        if kind == "pipe":
            r, w = os.pipe()
            grow_pipe(w)
            self.stack.callback(self._close_fd, r)
            self.stack.callback(self._close_dst_pipe)
            self._reader = Reader(r)
            self.dst_fd = w
            self._dst_close = w
            end: object = w
        else:
            sock, peer = tcp_pair() if kind == "tcp" else unix_pair()
            self.stack.enter_context(sock)
            self.stack.enter_context(peer)
            self._reader = Reader(peer)
            self.dst_fd = sock.fileno()
            self._dst_close = sock
            end = sock
        self._reader.start()
        return end

    @staticmethod
    def _close_fd(fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)

    def _close_dst_pipe(self) -> None:
        # received() may have closed it already: never close an fd number twice.
        end, self._dst_close = self._dst_close, None
        if isinstance(end, int):
            os.close(end)

    # -- after the transfer ----------------------------------------------------------
    def src_position(self) -> int:
        """The source fd's own position."""
        return os.lseek(self.src_fd, 0, os.SEEK_CUR)

    def dst_position(self) -> int:
        """The destination fd's own position."""
        return os.lseek(self.dst_fd, 0, os.SEEK_CUR)

    def src_rest(self) -> bytes:
        """A stream source: read what is still unread, to end of stream."""
        chunks = []
        while chunk := os.read(self.src_fd, 1 << 20):
            chunks.append(chunk)
        if self._writer is not None:
            self._writer.finish()
        return b"".join(chunks)

    def received(self) -> bytes:
        """What the destination holds: a file's whole content, or a stream's bytes
        once our end is closed (for a socket: shut down, so the peer sees EOF)."""
        if self.dst_path is not None:
            return self.dst_path.read_bytes()
        if self.dst_kind == "null":
            return b""
        end = self._dst_close
        if isinstance(end, socket.socket):
            end.shutdown(socket.SHUT_WR)
        elif self.dst_kind == "pipe":
            self._close_dst_pipe()
        assert self._reader is not None
        return self._reader.result()

    def close(self) -> None:
        """Tear everything down (a blocked feeder gets EPIPE once its reader is gone)."""
        self.stack.close()
        if self._writer is not None:
            self._writer.join(10)

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
