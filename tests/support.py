"""The rigs the whole suite shares: real files, pipes, sockets, ttys and devices,
threads that feed and drain them, and the asyncio helpers.

* byte patterns and hashes: :func:`pattern`, :func:`sha`, :func:`data`;
* background peers: :class:`Reader`, :class:`Writer`, :class:`PtyReader`;
* connected pairs: :func:`tcp_pair`, :func:`unix_pair`;
* :class:`Rig`: one source and one destination of named kinds, fed and drained, that
  reports afterwards what the destination holds and where every position is;
* asyncio: :func:`run` a coroutine on a chosen loop, :func:`feed` and :func:`drain`
  fds from the loop itself, :func:`epoll_watched` and :func:`open_fds` for leak checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import pty
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import tty
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from zerocopy import Method


def pattern(size: int, seed: int = 0) -> bytes:
    """*size* bytes that differ at every offset (so a shifted copy never matches)."""
    block = hashlib.sha256(seed.to_bytes(8, "little")).digest()
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(8, "little")).digest()
        counter += 1
    return bytes(out[:size])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Reader(threading.Thread):
    """Reads a socket or pipe fd to EOF in the background and keeps the bytes."""

    def __init__(self, fd: int | socket.socket) -> None:
        super().__init__(daemon=True)
        self.fd = fd.fileno() if isinstance(fd, socket.socket) else fd
        self.chunks: list[bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while data := os.read(self.fd, 1 << 20):
                self.chunks.append(data)
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self.error = exc

    def result(self, timeout: float = 60) -> bytes:
        self.join(timeout)
        assert not self.is_alive(), "reader did not reach EOF"
        if self.error is not None:
            raise self.error
        return b"".join(self.chunks)


class Writer(threading.Thread):
    """Writes *data* to a socket or pipe fd in the background, then closes it."""

    def __init__(self, end: socket.socket | int, data: bytes, close: bool = True) -> None:
        super().__init__(daemon=True)
        self.end = end
        self.data = data
        self.close = close
        self.error: BaseException | None = None

    def run(self) -> None:
        fd = self.end.fileno() if isinstance(self.end, socket.socket) else self.end
        try:
            view = memoryview(self.data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc
        finally:
            if self.close:
                if isinstance(self.end, socket.socket):
                    self.end.close()
                else:
                    os.close(self.end)

    def finish(self, timeout: float = 60) -> None:
        self.join(timeout)
        assert not self.is_alive(), "writer did not finish"
        if self.error is not None:
            raise self.error


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of TCP sockets on the loopback."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    return client, peer


def relay_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair, both ends with RELAY_TIMEOUT (the relay tests')."""
    client, peer = tcp_pair()
    client.settimeout(RELAY_TIMEOUT)
    peer.settimeout(RELAY_TIMEOUT)
    return client, peer


def unix_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of Unix stream sockets."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


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


_T = TypeVar("_T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def run(factory: LoopFactory, main: Coroutine[Any, Any, _T]) -> _T:
    """Run *main* to completion on a fresh loop from *factory*."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def ready(fd: int, writable: bool) -> None:
    """Wait until *fd* is readable (or writable) with the running loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    if writable:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await fut
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def drain(fd: int, limit: int = -1) -> bytes:
    """Read a non-blocking socket or pipe to end of stream (or *limit* bytes)."""
    chunks = bytearray()
    while limit < 0 or len(chunks) < limit:
        want = 1 << 20 if limit < 0 else min(1 << 20, limit - len(chunks))
        try:
            chunk = os.read(fd, want)
        except BlockingIOError:
            await ready(fd, writable=False)
            continue
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


async def feed(fd: int, data: bytes) -> None:
    """Write all of *data* to a non-blocking socket or pipe."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await ready(fd, writable=True)
            continue
        view = view[n:]


_TFD = re.compile(rb"^tfd:\s*(\d+)", re.MULTILINE)


def epoll_watched() -> set[int]:
    """Every fd number registered in any epoll instance of this process.  A stale
    registration of a closed dup still shows: epoll keys it on the open file."""
    watched: set[int] = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/self/fdinfo/{name}", "rb") as info:
                watched.update(int(m) for m in _TFD.findall(info.read()))
        except FileNotFoundError:  # the listing's own fd, or one closed meanwhile
            continue
    return watched


def open_fds() -> int:
    """How many fds this process has open."""
    return len(os.listdir("/proc/self/fd")) - 1  # minus the listing's own


def os_threads() -> int:
    """How many threads this process runs, as the kernel counts them."""
    return len(os.listdir("/proc/self/task"))


def bench_json(tmp: Path, *args: str) -> dict[str, Any]:
    """Run ``zerocopy bench ARGS`` in-process with its report as JSON under ``tmp``."""
    from zerocopy._cli import main

    out = tmp / "report.json"
    status = main(["bench", *args, "--json", str(out), "--no-progress", "--dir", str(tmp)])
    report: dict[str, Any] = json.loads(out.read_text())
    assert status == 0, report
    return report


# A relay process and the echo target behind it (tests/relay, tests/cli).

RELAY_TIMEOUT = 20.0


def free_port() -> int:
    """A loopback port nothing listens on (just now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Echo:
    """A TCP server that echoes every byte back and half-closes on EOF, a thread per
    connection; records how each connection's reads ended ("eof", "reset" or the error)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.server.settimeout(RELAY_TIMEOUT)
        self.port: int = self.server.getsockname()[1]
        self.endings: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        conn.settimeout(RELAY_TIMEOUT)
        try:
            while chunk := conn.recv(1 << 16):
                conn.sendall(chunk)
            self.endings.put("eof")
            conn.shutdown(socket.SHUT_WR)
        except ConnectionResetError:
            self.endings.put("reset")
        except OSError as exc:
            self.endings.put(repr(exc))
        finally:
            conn.close()

    def close(self) -> None:
        self.server.close()


def start_relay(*argv: str) -> tuple[subprocess.Popen[str], int]:
    """``zerocopy relay 127.0.0.1:PORT ARGV...`` once its first line says it relays."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-P", "-m", "zerocopy", "relay",
                             f"127.0.0.1:{port}", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(f"relaying 127.0.0.1:{port} -> "), line
    return proc, port


def stop_relay(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, exit 0, and what it logged."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=RELAY_TIMEOUT)
    assert proc.returncode == 0, err
    return err


def echo_exchange(port: int, payload: bytes) -> bytes:
    """Send *payload* to loopback *port*, half-close, and read until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=RELAY_TIMEOUT) as sock:
        def send() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        got = bytearray()
        while chunk := sock.recv(1 << 16):
            got += chunk
        sender.join(RELAY_TIMEOUT)
    return bytes(got)
