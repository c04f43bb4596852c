"""The asyncio file server: the listening socket, its accept loop and its limits.

Each connection is a :class:`._connection.Connection` (an ``asyncio.Protocol``
driven by httptools' callbacks; that module says how responses are sent).  The
server owns its listening socket and accepts with the loop's reader callback
rather than ``asyncio.start_server``, so that it can stop accepting:

- at ``max_connections`` it stops watching the socket (the kernel's backlog holds
  the next connections) and watches it again as soon as one closes;
- when ``accept`` fails for want of fds (EMFILE, ENFILE) or memory, it logs one
  warning, stops accepting for half a second and tries again, as nginx does: the
  server never dies of it, and the connections it has go on.

A sweep a few times a second enforces the timeouts (header, minimum receive rate,
keep-alive, send) on every connection: no timer per request.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from email.utils import formatdate
from types import TracebackType
from typing import Any, TextIO

from .._accept import PAUSE_ERRORS, Acceptor
from ._cache import OpenFileCache
from ._connection import Connection
from ._resolve import SymlinkPolicy

__all__ = ["FileServer", "ServeConfig"]

httptools: Any
try:
    httptools = importlib.import_module("httptools")
except ImportError:  # the "serve" extra is not installed: FileServer() says how to get it
    httptools = None

log = logging.getLogger("zerocopy.http")

#: seconds accepting pauses after EMFILE and the like (nginx's ngx_event_accept
#: waits 500 ms)
ACCEPT_PAUSE = 0.5
_BACKLOG = 511


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The server's policies, each with its default (docs/serve.md says why)."""

    #: follow a symlink only when its target stays inside the root ("inside"), or never
    symlinks: SymlinkPolicy = "inside"
    #: refuse every path component that starts with a dot (404)
    hide_dotfiles: bool = True
    #: an HTML listing for a directory without index.html (else 404)
    listing: bool = True
    #: the file served for a directory
    index: str = "index.html"
    #: send ``name.br``/``.zst``/``.gz`` when it exists and the client accepts it
    precompressed: bool = True
    #: the ``Cache-Control`` value of every file response, or None for none
    cache_control: str | None = None
    #: ranges allowed in one request; more and the header is ignored (nginx's max_ranges)
    max_ranges: int = 16
    #: bytes of the request target (the URL) before a 414 (nginx's 8 KiB line buffer)
    max_request_target: int = 8 * 1024
    #: bytes of request line plus headers before a 431 (slowloris and memory)
    max_header_bytes: int = 16 * 1024
    #: seconds from a request's first byte to its last header (slowloris): else 408
    header_timeout: float = 10.0
    #: seconds an idle keep-alive connection waits for its next request
    keepalive_timeout: float = 30.0
    #: seconds a response may go without sending a byte (a client that stops reading)
    send_timeout: float = 60.0
    #: bytes per second a request head must arrive at, averaged from its first byte
    #: and judged once it has taken a second (slowloris); 0 turns the rule off
    min_receive_rate: int = 100
    #: connections at once; at the limit the server stops accepting (the kernel's
    #: backlog holds the next ones) and resumes below it.  Each holds two fds.
    max_connections: int = 1024
    #: open files kept between requests, revalidated with fstat on every use; 0: none
    open_file_cache: int = 1024
    #: seconds a cached entry is trusted before its path is resolved again
    open_file_cache_valid: float = 1.0
    #: bodies up to this size go in one write with the head (pread + sendmsg)
    inline_body: int = 32 * 1024
    #: where the access log goes (combined format plus bytes and duration), or None
    access_log: TextIO | None = None


class _Dated:
    """The Date header line, formatted once a second (RFC 9110 6.6.1)."""

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def line(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.value = f"Date: {formatdate(second, usegmt=True)}\r\n".encode()
        return self.value


def _listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A nonblocking listening socket on the first address *host* names."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class FileServer:
    """Serve the files under *root* over HTTP/1.1 on the running event loop.

    ::

        async with FileServer("public", port=0) as server:
            print(server.url)
            await server.serve_forever()

    GET and HEAD with ranges, validators and preconditions (RFC 9110), keep-alive and
    pipelining (RFC 9112); every path resolved beneath *root* (openat2 where the
    kernel has it); bodies sent with sendfile.  *config* holds the policies
    (:class:`ServeConfig`).  Requires the ``serve`` extra (httptools).
    """

    def __init__(self, root: str | os.PathLike[str], *, host: str = "127.0.0.1",
                 port: int = 0, config: ServeConfig | None = None,
                 reuse_port: bool = False) -> None:
        if httptools is None:
            raise ImportError("zerocopy.http needs httptools: pip install 'zerocopy[serve]'")
        self.httptools = httptools
        self.root = os.fspath(root)
        self.host = host
        self.port = port
        self.config = config or ServeConfig()
        self.reuse_port = reuse_port
        self.root_fd = -1
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.cache = OpenFileCache(self.config.open_file_cache,
                                   self.config.open_file_cache_valid)
        self.date = _Dated()
        self.closing = False
        self._sock: socket.socket | None = None
        self._connections: set[Connection] = set()
        self._adopting = 0  # accepted, protocol not made yet
        self._acceptor: Acceptor | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._stopped: asyncio.Event | None = None
        self._emptied: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        """``http://HOST:PORT/`` with the port actually bound."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def connections(self) -> int:
        """The connections open now (accepted and not yet closed)."""
        return len(self._connections) + self._adopting

    async def start(self) -> None:
        """Open the root, listen and start accepting (``__aenter__`` calls it)."""
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._emptied = asyncio.Event()
        self.root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._sock = _listen(self.host, self.port, self.reuse_port)
        except BaseException:
            os.close(self.root_fd)
            self.root_fd = -1
            raise
        self.port = self._sock.getsockname()[1]
        self._acceptor = Acceptor(self.loop, self._sock, self._take, self._has_room,
                                  self._warn_accept, ACCEPT_PAUSE)
        self._acceptor.watch()
        self._sweep()

    async def serve_forever(self) -> None:
        """Accept connections until :meth:`close`."""
        if self._sock is None:
            await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    def close(self) -> None:
        """Stop accepting; idle connections close now, busy ones after the response
        in flight (:meth:`wait_closed` waits for them)."""
        self.closing = True
        if self._stopped is not None:
            self._stopped.set()
        if self._acceptor is not None:
            self._acceptor.stop()
        if self._sock is not None:
            self._sock.close()
        for conn in list(self._connections):
            conn.close_if_idle()

    async def wait_closed(self, grace: float | None = None) -> None:
        """Wait for the connections still busy, at most *grace* seconds, then drop
        the rest and release the root and the open-file cache."""
        if self._emptied is not None and self.connections:
            self._emptied.clear()
            try:
                await asyncio.wait_for(self._emptied.wait(), grace)
            except (asyncio.TimeoutError, TimeoutError):
                for conn in list(self._connections):
                    conn.abort()
                try:
                    await asyncio.wait_for(self._emptied.wait(), 1.0)
                except (asyncio.TimeoutError, TimeoutError):
                    pass
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self.cache.clear()
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    async def __aenter__(self) -> FileServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        await self.wait_closed(grace=self.config.send_timeout)

    # -- accepting ---------------------------------------------------------------

    def _has_room(self) -> bool:
        # At the limit the acceptor stops watching; forget() watches again.
        return self.connections < self.config.max_connections

    def _warn_accept(self, exc: OSError, seconds: float) -> None:
        log.warning("accept() failed: %s; not accepting for %.1f s (open connections: %d)",
                    exc.strerror or exc, seconds, self.connections)

    def _take(self, conn: socket.socket, _peer: Any) -> None:
        conn.setblocking(False)
        self._adopting += 1
        task = self.loop.create_task(self._adopt(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adopt(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: Connection(self), conn)
        except OSError as exc:
            conn.close()
            if exc.errno in PAUSE_ERRORS and self._acceptor is not None:
                self._acceptor.pause(exc)
        finally:
            self._adopting -= 1
            self._check_empty()

    def adopt(self, conn: Connection) -> None:
        """A connection is made (Connection.connection_made)."""
        self._connections.add(conn)

    def forget(self, conn: Connection) -> None:
        """A connection is lost: below the limit again, accepting resumes."""
        self._connections.discard(conn)
        self._check_empty()
        if self._acceptor is not None:
            self._acceptor.watch()

    def _check_empty(self) -> None:
        if self._emptied is not None and not self.connections:
            self._emptied.set()

    # -- timeouts ----------------------------------------------------------------

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self._connections):
            conn.check(now)
        config = self.config
        shortest = min(config.header_timeout, config.keepalive_timeout, config.send_timeout)
        self._sweeper = self.loop.call_later(max(0.05, min(0.25, shortest / 4)), self._sweep)
