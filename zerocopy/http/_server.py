"""The asyncio file server: connections, the request loop, and the responses.

Requests are parsed by httptools (the llhttp parser uvicorn uses), fed with what
each read brings; several requests in one read (pipelining, RFC 9112 9.3.2) queue
and are answered one by one, in order.  A response's head is written to the
stream and its body follows with :func:`zerocopy.atransfer_to_writer`, which sends
the file with sendfile only after the head has left, so the two are never
reordered.  Small bodies (up to ``ServeConfig.inline_body``) go in the same write as
the head: one system call instead of two for the common small file.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import logging
import os
import stat
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType
from urllib.parse import quote
from typing import Any, TextIO

from .._aio.streams import atransfer_to_writer
from .._errors import ZeroCopyError
from ._files import (Representation, if_range_holds, listing, open_representation,
                     precondition_status)
from ._ranges import Span, multipart, parse_range
from ._resolve import BadPath, SymlinkPolicy, open_beneath, split_path

__all__ = ["FileServer", "ServeConfig"]

httptools: Any
try:
    httptools = importlib.import_module("httptools")
except ImportError:  # the "serve" extra is not installed: FileServer() says how to get it
    httptools = None

log = logging.getLogger("zerocopy.http")

_REASONS = {200: "OK", 206: "Partial Content", 301: "Moved Permanently",
            304: "Not Modified", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout", 412: "Precondition Failed",
            416: "Range Not Satisfiable", 431: "Request Header Fields Too Large",
            500: "Internal Server Error"}
_ALLOW = "GET, HEAD"


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
    #: bytes of request line plus headers before a 431 (slowloris and memory)
    max_header_bytes: int = 16 * 1024
    #: seconds from a request's first byte to its last header (slowloris): else 408
    header_timeout: float = 10.0
    #: seconds an idle keep-alive connection waits for its next request
    keepalive_timeout: float = 30.0
    #: seconds a body may take to be sent to a client that stops reading
    send_timeout: float = 60.0
    #: bodies up to this size go in one write with the head
    inline_body: int = 32 * 1024
    #: where the access log goes (combined format plus bytes and duration), or None
    access_log: TextIO | None = None


class _Request:
    """One parsed request (httptools' callbacks fill it)."""

    __slots__ = ("method", "target", "headers", "version", "keep_alive")

    def __init__(self) -> None:
        self.method = ""
        self.target = b""
        self.headers: dict[str, str] = {}
        self.version = "1.1"
        self.keep_alive = True


class _Collector:
    """httptools' callback object: builds requests and counts header bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.current = _Request()
        self.done: deque[_Request] = deque()
        self.header_bytes = 0
        self.too_large = False
        self.parser: Any = None

    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > self.limit:
            self.too_large = True

    def on_message_begin(self) -> None:
        self.current = _Request()
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.current.headers.get(key)
        self.current.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        self.current.method = self.parser.get_method().decode("ascii", "replace")
        self.current.version = self.parser.get_http_version()
        self.current.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.done.append(self.current)


@dataclass(slots=True)
class _Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    rep: Representation | None = None
    spans: list[Span] | None = None
    parts: list[bytes] | None = None  # multipart heads, then the tail
    length: int = 0


class _Dated:
    """The Date header, formatted once a second (RFC 9110 6.6.1)."""

    def __init__(self) -> None:
        self.second = -1
        self.value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second, self.value = second, formatdate(second, usegmt=True)
        return self.value


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
        self.root = os.fspath(root)
        self.host = host
        self.port = port
        self.config = config or ServeConfig()
        self.reuse_port = reuse_port
        self._root_fd = -1
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._closing = False
        self._stopped: asyncio.Event | None = None
        self._date = _Dated()

    @property
    def url(self) -> str:
        """``http://HOST:PORT/`` with the port actually bound."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        """Open the root and start listening (``__aenter__`` calls it)."""
        self._stopped = asyncio.Event()
        self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.port, reuse_port=self.reuse_port or None,
                limit=self.config.max_header_bytes * 2)
        except BaseException:
            os.close(self._root_fd)
            raise
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        """Accept connections until :meth:`close`."""
        if self._server is None:
            await self.start()
        assert self._server is not None and self._stopped is not None
        # our own event, not Server.serve_forever(): uvloop's does not end on close()
        await self._server.start_serving()
        await self._stopped.wait()

    def close(self) -> None:
        """Stop accepting; idle connections close now, busy ones after the response
        in flight (:meth:`wait_closed` waits for them)."""
        self._closing = True
        if self._stopped is not None:
            self._stopped.set()
        if self._server is not None:
            self._server.close()
        for conn in self._connections.values():
            if not conn.busy:
                conn.writer.close()

    async def wait_closed(self, grace: float | None = None) -> None:
        """Wait for the connections still busy, at most *grace* seconds, then drop
        the rest and release the root."""
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    async def __aenter__(self) -> FileServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        await self.wait_closed(grace=self.config.send_timeout)

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(self, reader, writer)
        self._connections[task] = conn
        try:
            await conn.run()
        except (ConnectionError, asyncio.TimeoutError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            del self._connections[task]
            writer.close()


class _Connection:
    """One client connection: read, parse, answer in order, until it ends."""

    def __init__(self, server: FileServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.config = server.config
        self.reader = reader
        self.writer = writer
        self.busy = False
        self.collector = _Collector(self.config.max_header_bytes)
        self.parser = httptools.HttpRequestParser(self.collector)
        self.collector.parser = self.parser
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else "-"

    async def run(self) -> None:
        while not self.server._closing:
            request = await self._next_request()
            if request is None:
                return
            self.busy = True
            try:
                keep = await self._answer(request)
            finally:
                self.busy = False
            if not keep:
                return

    async def _next_request(self) -> _Request | None:
        """The next complete request, or None when the connection should end (EOF,
        timeout, bad request: the error response is sent here)."""
        collector = self.collector
        started: float | None = None
        while not collector.done:
            now = time.monotonic()
            if started is None and collector.header_bytes == 0:
                timeout = self.config.keepalive_timeout
            else:
                started = started or now
                timeout = self.config.header_timeout - (now - started)
            try:
                data = await asyncio.wait_for(self.reader.read(65536), max(timeout, 0.0))
            except (asyncio.TimeoutError, TimeoutError):
                if collector.header_bytes or started is not None:
                    await self._error(408)  # slowloris: headers too slow
                return None
            if not data:
                return None
            if started is None:
                started = now
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                pass  # no upgrade is offered: the request is answered as plain HTTP
            except httptools.HttpParserError:
                await self._error(431 if collector.too_large else 400)
                return None
            if collector.too_large:
                await self._error(431)
                return None
        return collector.done.popleft()

    async def _error(self, status: int) -> None:
        response = self._plain(status, f"{status} {_REASONS[status]}\n")
        response.headers.append(("Connection", "close"))
        await self._send(response, head_only=False)

    def _plain(self, status: int, text: str) -> _Response:
        body = text.encode()
        return _Response(status, [("Content-Type", "text/plain; charset=utf-8")], body,
                         length=len(body))

    async def _answer(self, request: _Request) -> bool:
        """Answer *request*; returns whether the connection goes on."""
        began = time.monotonic()
        response = self._respond(request)
        keep = request.keep_alive and not self.server._closing
        if not keep:
            response.headers.append(("Connection", "close"))
        elif request.version == "1.0":
            response.headers.append(("Connection", "keep-alive"))
        try:
            sent, complete = await self._send(response, head_only=request.method == "HEAD")
        finally:
            if response.rep is not None:
                response.rep.close()
        self._log(request, response.status, sent, time.monotonic() - began)
        return keep and complete

    def _respond(self, request: _Request) -> _Response:
        if request.method not in ("GET", "HEAD"):
            response = self._plain(405, "405 Method Not Allowed\n")
            response.headers.append(("Allow", _ALLOW))
            return response
        raw_path = request.target.partition(b"?")[0].partition(b"#")[0]
        if not raw_path.startswith(b"/"):
            return self._plain(400, "400 Bad Request\n")
        try:
            parts = split_path(raw_path, hide_dotfiles=self.config.hide_dotfiles)
            fd = open_beneath(self.server._root_fd, parts, self.config.symlinks)
        except BadPath:
            return self._plain(404, "404 Not Found\n")
        except OSError as exc:
            if exc.errno == errno.EACCES:
                return self._plain(403, "403 Forbidden\n")
            return self._plain(404, "404 Not Found\n")
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                return self._directory(request, raw_path, parts, fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return self._plain(404, "404 Not Found\n")
            rep = open_representation(self.server._root_fd, parts, fd, st,
                                      request.headers.get("accept-encoding"),
                                      self.config.symlinks, self.config.precompressed)
        except OSError:
            return self._plain(500, "500 Internal Server Error\n")
        return self._file(request, rep)

    def _directory(self, request: _Request, raw_path: bytes, parts: list[str],
                   fd: int) -> _Response:
        try:
            if not raw_path.endswith(b"/"):  # relative links in the page need the slash
                response = self._plain(301, "301 Moved Permanently\n")
                # from the decoded components, never the raw target: "//evil.example/x"
                # must not become a protocol-relative Location (an open redirect)
                location = "/" + "".join(quote(part) + "/" for part in parts)
                query = request.target.partition(b"?")[2]
                if query:
                    location += "?" + query.decode("latin-1")
                response.headers.append(("Location", location))
                return response
            index = parts + [self.config.index]
            try:
                index_fd = open_beneath(self.server._root_fd, index, self.config.symlinks)
            except OSError:
                index_fd = -1
            if index_fd >= 0:
                index_st = os.fstat(index_fd)
                if stat.S_ISREG(index_st.st_mode):
                    rep = open_representation(
                        self.server._root_fd, index, index_fd, index_st,
                        request.headers.get("accept-encoding"), self.config.symlinks,
                        self.config.precompressed)
                    return self._file(request, rep)
                os.close(index_fd)
            if not self.config.listing:
                return self._plain(404, "404 Not Found\n")
            body = listing(fd, "/" + "/".join(parts) + ("/" if parts else ""),
                           self.config.hide_dotfiles)
            return _Response(200, [("Content-Type", "text/html; charset=utf-8")], body,
                             length=len(body))
        finally:
            os.close(fd)

    def _file(self, request: _Request, rep: Representation) -> _Response:
        headers: list[tuple[str, str]] = []
        if rep.etag is not None:
            headers.append(("ETag", rep.etag))
        if rep.last_modified is not None:
            headers.append(("Last-Modified", rep.last_modified))
        if self.config.cache_control is not None:
            headers.append(("Cache-Control", self.config.cache_control))
        if self.config.precompressed:
            headers.append(("Vary", "Accept-Encoding"))
        if rep.encoding is not None:
            headers.append(("Content-Encoding", rep.encoding))
        status = precondition_status(rep, request.headers)
        if status is not None:
            if status == 412:
                response = self._plain(412, "412 Precondition Failed\n")
                rep.close()
                return response
            return _Response(304, headers)  # validators, no body (RFC 9110 15.4.5)
        headers.append(("Accept-Ranges", "bytes"))
        spans = self._ranges(request, rep)
        if spans is not None and not spans:
            rep.close()
            response = self._plain(416, "416 Range Not Satisfiable\n")
            response.headers.append(("Content-Range", f"bytes */{rep.size}"))
            return response
        if spans is None:
            headers.append(("Content-Type", rep.content_type))
            return _Response(200, headers, rep=rep, spans=[Span(0, rep.size - 1)]
                             if rep.size else [], length=rep.size)
        if len(spans) == 1:
            span = spans[0]
            headers.append(("Content-Type", rep.content_type))
            headers.append(("Content-Range", f"bytes {span.start}-{span.end}/{rep.size}"))
            return _Response(206, headers, rep=rep, spans=spans, length=span.length)
        body = multipart(spans, rep.size, rep.content_type, os.urandom(12).hex())
        headers.append(("Content-Type", body.content_type))
        return _Response(206, headers, rep=rep, spans=spans,
                         parts=body.heads + [body.tail], length=body.length)

    def _ranges(self, request: _Request, rep: Representation) -> list[Span] | None:
        header = request.headers.get("range")
        if header is None or request.method not in ("GET", "HEAD"):
            return None
        if_range = request.headers.get("if-range")
        if if_range is not None and not if_range_holds(rep, if_range):
            return None
        return parse_range(header, rep.size, self.config.max_ranges)

    def _head(self, response: _Response) -> bytes:
        lines = [f"HTTP/1.1 {response.status} {_REASONS[response.status]}",
                 f"Date: {self.server._date.now()}", "Server: zerocopy"]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if response.status != 304:
            lines.append(f"Content-Length: {response.length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _send(self, response: _Response, head_only: bool) -> tuple[int, bool]:
        """Write *response*; returns the body bytes sent and whether all were."""
        head = self._head(response)
        writer = self.writer
        if head_only or response.status == 304:
            writer.write(head)
            await asyncio.wait_for(writer.drain(), self.config.send_timeout)
            return 0, True
        rep = response.rep
        if rep is None or response.spans is None:
            writer.write(head + response.body)
            await asyncio.wait_for(writer.drain(), self.config.send_timeout)
            return len(response.body), True
        if response.parts is None and response.length <= self.config.inline_body:
            return await self._send_inline(head, rep, response)
        writer.write(head)
        sent = 0
        for i, span in enumerate(response.spans):
            if response.parts is not None:
                writer.write(response.parts[i])
                sent += len(response.parts[i])
            got = await self._send_span(rep, span)
            sent += got
            if got < span.length:
                return sent, False
        if response.parts is not None:
            writer.write(response.parts[-1])
            sent += len(response.parts[-1])
        await asyncio.wait_for(writer.drain(), self.config.send_timeout)
        return sent, True

    async def _send_inline(self, head: bytes, rep: Representation,
                           response: _Response) -> tuple[int, bool]:
        start = response.spans[0].start if response.spans else 0
        body = os.pread(rep.fd, response.length, start) if response.length else b""
        if len(body) < response.length:
            body = b""  # shrank since fstat: the head alone, then close (see _short)
            self._short(rep, response.length, 0)
        self.writer.write(head + body)
        await asyncio.wait_for(self.writer.drain(), self.config.send_timeout)
        return len(body), len(body) == response.length

    async def _send_span(self, rep: Representation, span: Span) -> int:
        """Send one span with sendfile; fewer bytes than asked means the file shrank
        (the caller closes the connection: the client sees a short body, never
        bytes past Content-Length nor a hang, as nginx does)."""
        try:
            result = await atransfer_to_writer(rep.fd, self.writer, span.length,
                                               offset=span.start,
                                               timeout=self.config.send_timeout)
        except ZeroCopyError as exc:
            # the peer left or stopped reading past send_timeout: the connection ends
            raise ConnectionResetError(str(exc)) from exc
        sent = result.transferred
        if sent < span.length:
            self._short(rep, span.length, sent)
        return sent

    def _short(self, rep: Representation, wanted: int, sent: int) -> None:
        log.warning("file shrank while being sent: %d of %d bytes sent from fd %d; "
                    "closing the connection", sent, wanted, rep.fd)

    def _log(self, request: _Request, status: int, sent: int, seconds: float) -> None:
        out = self.config.access_log
        if out is None:
            return
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        target = request.target.decode("latin-1")
        referer = request.headers.get("referer", "-")
        agent = request.headers.get("user-agent", "-")
        out.write(f'{self.peer} - - [{when}] "{request.method} {target} HTTP/'
                  f'{request.version}" {status} {sent} "{referer}" "{agent}" '
                  f'{seconds * 1000:.3f}ms\n')
        out.flush()

