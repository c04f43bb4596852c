"""One HTTP/1.1 connection as an :class:`asyncio.Protocol` driven by httptools.

No task and no coroutine per request: ``data_received`` feeds the parser, whose
callbacks queue complete requests, and each is answered from the callback that
made it possible (new bytes, the socket writable again, the transport's buffer
empty).  Pipelined requests (RFC 9112 9.3.2) are answered strictly in order, one
response at a time.

Sending, and why bytes can never be reordered:

- The transport's write-buffer limits are both 0, so asyncio (and uvloop) calls
  ``pause_writing`` as soon as it holds an unsent byte and ``resume_writing`` when
  it holds none.  While it holds any, this connection writes nothing itself.
- With the transport empty, the connection writes to the socket itself, through a
  ``dup`` of the transport's fd (asyncio refuses ``add_writer`` on an fd a transport
  owns, and the dup can never be reused by another file while it is ours): the head
  and a small body in one ``sendmsg``; a head followed by a file with ``MSG_MORE``,
  so the head leaves in the same segments as the file's first bytes; the file with
  nonblocking ``sendfile(2)``, resumed by the loop's writability callback (no thread
  per request).
- What a direct ``sendmsg`` could not send goes to ``transport.write``, which
  buffers it and pauses us until it has left.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
import time
from collections import deque
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from ._files import (Representation, _regular, if_range_holds, listing,
                     open_representation, precondition_status)
from ._ranges import Span, multipart, parse_range
from ._resolve import BadPath, open_beneath, split_path

if TYPE_CHECKING:
    from ._server import FileServer

__all__ = ["Connection"]

log = logging.getLogger("zerocopy.http")

REASONS = {200: "OK", 206: "Partial Content", 301: "Moved Permanently",
           304: "Not Modified", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 412: "Precondition Failed",
           414: "URI Too Long", 416: "Range Not Satisfiable",
           431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable"}
_ALLOW = "GET, HEAD"
#: pipelined requests parsed ahead of the response in flight before reading pauses
_MAX_QUEUED = 32
#: a head is judged against min_receive_rate only once it has taken this long
RATE_GRACE = 1.0
_MSG_MORE = getattr(socket, "MSG_MORE", 0)
_CONNECTION = {"close": b"Connection: close\r\n", "keep-alive": b"Connection: keep-alive\r\n",
               None: b""}
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)
_dup = os.dup  # (a seam: the tests make it fail as EMFILE would)


class _Request:
    """One parsed request (the parser's callbacks fill it), or a refusal to answer
    in its place (``failed``: 400, 408, 414, 431), in order behind what came before."""

    __slots__ = ("method", "target", "headers", "version", "keep_alive", "failed")

    def __init__(self, failed: int = 0) -> None:
        self.method = ""
        self.target = b""
        self.headers: dict[str, str] = {}
        self.version = "1.1"
        self.keep_alive = True
        self.failed = failed


class _Response:
    __slots__ = ("status", "headers", "body", "rep", "spans", "parts", "length", "fixed")

    def __init__(self, status: int, headers: list[tuple[str, str]] | None = None,
                 body: bytes = b"", rep: Representation | None = None,
                 spans: list[Span] | None = None, parts: list[bytes] | None = None,
                 length: int = 0, fixed: bytes | None = None) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body
        self.rep = rep
        self.spans = spans
        self.parts = parts  # multipart heads, then the tail
        self.length = length
        self.fixed = fixed  # a full 200: the representation's header lines, built once


class _Outgoing:
    """The response being sent: byte strings and file spans, in order."""

    __slots__ = ("request", "status", "rep", "pieces", "offset", "sent", "complete",
                 "keep", "began")

    def __init__(self, request: _Request, status: int, rep: Representation | None,
                 pieces: deque[bytes | Span], keep: bool, began: float) -> None:
        self.request = request
        self.status = status
        self.rep = rep
        self.pieces = pieces
        self.offset = -1  # the next file offset of the span in front, once started
        self.sent = 0  # body bytes (what the access log counts)
        self.complete = True
        self.keep = keep
        self.began = began


# sendfile(2)'s "this file cannot be sent this way" before its first byte (EINVAL: no
# splice_read for the file system): three of the errnos the engine's method_cannot
# (zerocopy._engine.driver) falls back on, the ones sendfile gives for a file
_SENDFILE_CANNOT = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def _plain(status: int) -> _Response:
    body = f"{status} {REASONS[status]}\n".encode()
    return _Response(status, [("Content-Type", "text/plain; charset=utf-8")], body,
                     length=len(body))


class Connection(asyncio.Protocol):
    """One client connection: parse, answer in order, until it ends."""

    def __init__(self, server: FileServer) -> None:
        self.server = server
        self.config = server.config
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.sock: socket.socket | None = None
        self.fd = -1
        self.borrowed = False  # self.sock wraps the transport's own fd (no dup was had)
        self.copying = False  # the span in front goes by pread + transport.write
        self.peer = "-"
        self.parser: Any = server.httptools.HttpRequestParser(self)
        self.queue: deque[_Request] = deque()
        self.request = _Request()
        self.head_bytes = 0
        self.too_large = False
        self.too_large_status = 431  # 414 when it was the request target (RFC 9110 15.5.15)
        self.head_started = 0.0  # monotonic time of the head's first byte; 0: none
        self.received = 0  # bytes received on the connection
        self.received_before = 0  # ... before the chunk being parsed
        self.received_mark = 0  # ... before the head in progress began
        self.begun = 0  # heads begun on this connection
        self.head_raw = 0  # bytes of the unfinished head received after its first chunk
        self.out: _Outgoing | None = None
        self.blocked = False  # the transport holds unsent bytes (pause_writing)
        self.watching = False  # add_writer is on for our fd
        self.reading = True
        self.refused = False  # a 400/408/414/431 is queued: the rest of the input is ignored
        self.closing = False
        self.closed = False
        self.ended = False  # the client sent EOF: close once what it asked is answered
        self.idle_since = time.monotonic()
        self.progress_at = self.idle_since

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, only alike)
        self.transport = transport = cast(asyncio.Transport, transport)
        fd = transport.get_extra_info("socket").fileno()
        try:
            self.sock = socket.socket(fileno=_dup(fd))
            self.sock.setblocking(False)
        except OSError:
            # out of fds (EMFILE): write through the transport's own fd, and copy a body
            # that has to wait for the socket (no dup, so no add_writer; see _sendfile)
            self.sock = socket.socket(fileno=fd)
            self.borrowed = True
        self.fd = self.sock.fileno()
        # pause_writing the moment the transport buffers a byte, resume_writing when
        # it has none: we write to the socket ourselves only while it is empty
        transport.set_write_buffer_limits(high=0, low=0)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else "-"
        self.server.adopt(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._unwatch()
        out, self.out = self.out, None
        if out is not None and out.rep is not None:
            out.rep.close()
        self.queue.clear()
        if self.sock is not None:
            if self.borrowed:
                self.sock.detach()  # the transport's fd: it closes it
            else:
                self.sock.close()
            self.sock = None
        self.server.forget(self)

    def pause_writing(self) -> None:
        self.blocked = True

    def resume_writing(self) -> None:
        # Go on in a callback of our own: the default loop calls this from inside its
        # write handler, which, if we closed the transport here, would then run
        # connection_lost a second time (selector_events _write_ready checks
        # _closing after calling us).
        if self.blocked:
            self.blocked = False
            self.loop.call_soon(self._resume)

    def _resume(self) -> None:
        if self.closed or self.blocked:
            return
        self.progress_at = time.monotonic()
        if self.out is not None and not self.watching and not self._advance():
            return  # the response in flight goes on (it waits again)
        self._pump()

    def data_received(self, data: bytes) -> None:
        if self.refused or self.closing:
            return
        self.received_before = self.received
        self.received += len(data)
        continued = self.head_started != 0  # a head unfinished at the last chunk
        begun = self.begun
        httptools = self.server.httptools
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no upgrade is offered: the request is answered as plain HTTP
        except httptools.HttpParserError:
            self._refuse(self.too_large_status if self.too_large else 400)
            return
        if self.head_started:
            # the parser buffers a header until it ends: count the raw bytes of a
            # head that spans chunks, so one endless header cannot grow it unbounded
            if continued and begun == self.begun:
                self.head_raw += len(data)
            else:
                self.head_raw = 0  # began in this chunk: at most len(data) of it so far
            if self.head_raw > self.config.max_header_bytes:
                self.too_large = True
        if self.too_large:
            self._refuse(self.too_large_status)
            return
        if len(self.queue) > _MAX_QUEUED and self.reading:
            self._pause_reading()  # a client pipelining faster than it reads
        self._pump()

    def eof_received(self) -> bool | None:
        # the client sent its last request: answer what is queued, then close
        self.ended = True
        if self.out is None and not self.queue:
            self._close()
        return True  # keep the write side open for the responses still due

    # -- httptools callbacks ------------------------------------------------------

    def _count(self, n: int) -> None:
        self.head_bytes += n
        if self.head_bytes > self.config.max_header_bytes:
            self.too_large = True

    def on_message_begin(self) -> None:
        self.begun += 1
        self.request = _Request()
        self.head_bytes = 0
        self.head_started = time.monotonic()
        self.received_mark = self.received_before

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.request.target += url  # (the parser may hand a long target over in pieces)
        if len(self.request.target) > self.config.max_request_target:
            self.too_large, self.too_large_status = True, 414

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self.request.headers
        old = headers.get(key)
        headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        request, parser = self.request, self.parser
        request.method = parser.get_method().decode("ascii", "replace")
        request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        self.head_started = 0.0

    def on_message_complete(self) -> None:
        if not self.too_large:  # (the 414 or 431 goes in its place)
            self.queue.append(self.request)

    # -- the server's sweep (timeouts and rates) ---------------------------------

    @property
    def busy(self) -> bool:
        """A response is in flight or due (close() lets it finish)."""
        return self.out is not None or bool(self.queue)

    def check(self, now: float) -> None:
        """Enforce the timeouts (the server calls this a few times a second)."""
        if self.closed or self.closing:
            return
        config = self.config
        if self.out is not None or self.blocked:
            if now - self.progress_at > config.send_timeout:  # the client stopped reading
                self._abort()
            return
        if self.queue:
            return
        if self.head_started:
            # a head that began while a response was still going is timed from its end
            elapsed = now - max(self.head_started, self.idle_since)
            rate = config.min_receive_rate
            if elapsed >= config.header_timeout or (
                    rate and elapsed >= RATE_GRACE
                    and (self.received - self.received_mark) / elapsed < rate):
                self._refuse(408)  # slowloris: the head comes too slowly
            return
        if now - self.idle_since >= config.keepalive_timeout:
            self._close()

    def close_if_idle(self) -> None:
        if not self.busy:
            self._close()

    def abort(self) -> None:
        self._abort()

    # -- answering ---------------------------------------------------------------

    def _refuse(self, status: int) -> None:
        self.refused = True
        self.queue.append(_Request(failed=status))
        self._pause_reading()
        self._pump()

    def _pause_reading(self) -> None:
        if self.reading and self.transport is not None and not self.closed:
            self.reading = False
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self.reading and not self.refused and self.transport is not None \
                and not self.closed and not self.closing:
            self.reading = True
            self.transport.resume_reading()

    def _pump(self) -> None:
        """Answer queued requests until one must wait (or none is left)."""
        while self.out is None and not self.blocked and not self.closing:
            if not self.queue:
                if self.server.closing or self.ended:
                    self._close()
                elif not self.reading:
                    self._resume_reading()
                return
            if self.server.closing and not self.queue[0].failed:
                self._close()  # draining: what was in flight is done; no new response
                return
            self._start(self.queue.popleft())
            if not self._advance():
                return

    def _start(self, request: _Request) -> None:
        began = time.monotonic()
        connection: str | None
        if request.failed:
            response = _plain(request.failed)
            keep, connection = False, "close"
        else:
            try:
                response = self._respond(request)
            except OSError:  # EIO and the like from fstat or a sidecar probe
                response = _plain(500)
            keep = request.keep_alive and not self.server.closing
            connection = None if keep and request.version != "1.0" else \
                "keep-alive" if keep else "close"
        head = self._head(response, _CONNECTION[connection])
        rep = response.rep
        pieces: deque[bytes | Span] = deque()
        out = _Outgoing(request, response.status, rep, pieces, keep, began)
        self.out = out
        self.progress_at = began
        if request.method == "HEAD" or response.status == 304:
            pieces.append(head)
        elif rep is None or response.spans is None:
            pieces.append(head + response.body)
            out.sent = len(response.body)
        elif response.parts is None and response.length <= self.config.inline_body:
            start = response.spans[0].start if response.spans else 0
            try:
                body = os.pread(rep.fd, response.length, start) if response.length else b""
            except OSError:
                body = b""  # EIO: as a file that shrank, the head and then close
            if len(body) < response.length:  # shrank since fstat: the head, then close
                self._short(rep, response.length, 0)
                body, out.complete = b"", False
            pieces.append(head + body)
            out.sent = len(body)
        else:
            pieces.append(head)
            parts = response.parts
            for i, span in enumerate(response.spans):
                if parts is not None:
                    pieces.append(parts[i])
                pieces.append(span)
            if parts is not None:
                pieces.append(parts[-1])
                out.sent = sum(len(p) for p in parts)

    def _advance(self) -> bool:
        """Send what can be sent now; True when the response is done."""
        out = self.out
        assert out is not None
        pieces = out.pieces
        while pieces:
            if self.blocked or self.closed or self.transport is None \
                    or self.transport.is_closing():
                return False
            piece = pieces[0]
            if isinstance(piece, bytes):
                pieces.popleft()
                if not self._write(piece, bool(pieces)):
                    return False
                continue
            if not self._sendfile(out, piece):
                return False
            if pieces:  # (a file that shrank has cleared them: nothing more is sent)
                pieces.popleft()
            out.offset = -1
        self._unwatch()
        self._finish(out)
        return True

    def _write(self, data: bytes, more: bool) -> bool:
        """Write *data* ahead of what follows (MSG_MORE when a file follows, so they
        share segments); what the socket does not take now goes to the transport."""
        assert self.sock is not None and self.transport is not None
        try:
            n = self.sock.send(data, _MSG_MORE if more else 0)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._abort()
            return False
        if n:
            self.progress_at = time.monotonic()
        if n < len(data):
            self.transport.write(data[n:])  # buffered: pause_writing follows
        return True

    def _sendfile(self, out: _Outgoing, span: Span) -> bool:
        """Send *span* of the file with nonblocking sendfile; False while it waits for
        the socket (the writability callback comes back here)."""
        assert out.rep is not None
        end = span.end + 1
        if out.offset < 0:
            out.offset = span.start
        while out.offset < end:
            if self.copying:
                return self._copy(out, span)
            try:
                n = os.sendfile(self.fd, out.rep.fd, out.offset, end - out.offset)
            except (BlockingIOError, InterruptedError):
                if self.borrowed:
                    self.copying = True  # no fd of our own to wait on
                    continue
                self._watch()
                return False
            except OSError as exc:
                if exc.errno in _SENDFILE_CANNOT and out.offset == span.start:
                    # a filesystem whose files sendfile cannot read (some FUSE and
                    # network file systems): nothing left yet, so the copy takes over
                    self.copying = True
                    continue
                self._abort()  # EPIPE, ECONNRESET: the client left
                return False
            if n == 0:
                # the file shrank since fstat: close after what was sent, so the client
                # sees a short body (never more than Content-Length, never a hang)
                self._short(out.rep, span.length, out.offset - span.start)
                out.complete = False
                out.pieces.clear()
                return True
            out.offset += n
            out.sent += n
            self.progress_at = time.monotonic()
        return True

    def _copy(self, out: _Outgoing, span: Span) -> bool:
        """The rest of *span* by pread and transport.write, a chunk each time the
        transport has emptied: only when the server had no fd to dup (EMFILE)."""
        assert out.rep is not None and self.transport is not None
        end = span.end + 1
        while out.offset < end and not self.blocked:
            data = os.pread(out.rep.fd, min(end - out.offset, 256 * 1024), out.offset)
            if not data:
                self._short(out.rep, span.length, out.offset - span.start)
                out.complete = False
                out.pieces.clear()
                break
            self.transport.write(data)
            out.offset += len(data)
            out.sent += len(data)
            self.progress_at = time.monotonic()
        if out.offset < end and out.complete:
            return False  # resume_writing comes back
        self.copying = False
        return True

    def _watch(self) -> None:
        if not self.watching:
            self.watching = True
            self.loop.add_writer(self.fd, self._writable)

    def _unwatch(self) -> None:
        if self.watching:
            self.watching = False
            self.loop.remove_writer(self.fd)

    def _writable(self) -> None:
        if self.out is None or self.closed:
            self._unwatch()
            return
        if self._advance():
            self._pump()

    def _finish(self, out: _Outgoing) -> None:
        self.out = None
        if out.rep is not None:
            out.rep.close()
        now = time.monotonic()
        self.idle_since = now
        if self.config.access_log is not None:
            self._log(out, now - out.began)
        if not (out.keep and out.complete):
            self._close()

    def _close(self) -> None:
        """Close after the bytes the transport still holds."""
        if not self.closing and self.transport is not None:
            self.closing = True
            self._unwatch()
            self.transport.close()

    def _abort(self) -> None:
        self.closing = True
        self._unwatch()
        if self.transport is not None:
            self.transport.abort()

    def _short(self, rep: Representation, wanted: int, sent: int) -> None:
        log.warning("file shrank while being sent: %d of %d bytes sent from fd %d; "
                    "closing the connection", sent, wanted, rep.fd)

    def _log(self, out: _Outgoing, seconds: float) -> None:
        stream = self.config.access_log
        assert stream is not None
        request = out.request
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        target = request.target.decode("latin-1") or "-"
        referer = request.headers.get("referer", "-")
        agent = request.headers.get("user-agent", "-")
        stream.write(f'{self.peer} - - [{when}] "{request.method or "-"} {target} HTTP/'
                     f'{request.version}" {out.status} {out.sent} "{referer}" "{agent}" '
                     f'{seconds * 1000:.3f}ms\n')
        stream.flush()

    # -- the response to a request -----------------------------------------------

    def _head(self, response: _Response, connection: bytes) -> bytes:
        date = self.server.date.line()
        if response.fixed is not None:
            return b"".join((b"HTTP/1.1 200 OK\r\n", date, response.fixed, connection,
                             b"Content-Length: %d\r\n\r\n" % response.length))
        lines = [f"HTTP/1.1 {response.status} {REASONS[response.status]}\r\n".encode(),
                 date, b"Server: zerocopy\r\n"]
        lines += [f"{name}: {value}\r\n".encode("latin-1")
                  for name, value in response.headers]
        lines.append(connection)
        if response.status != 304:
            lines.append(b"Content-Length: %d\r\n" % response.length)
        lines.append(b"\r\n")
        return b"".join(lines)

    def _respond(self, request: _Request) -> _Response:
        if request.method not in ("GET", "HEAD"):
            response = _plain(405)
            response.headers.append(("Allow", _ALLOW))
            return response
        raw_path = request.target.partition(b"?")[0].partition(b"#")[0]
        if not raw_path.startswith(b"/"):
            return _plain(400)
        config = self.config
        coding = request.headers.get("accept-encoding") if config.precompressed else None
        cache = self.server.cache
        key = (raw_path, coding)
        rep = cache.get(key, time.monotonic())
        if rep is not None:
            return self._file(request, rep)
        root_fd = self.server.root_fd
        try:
            parts = split_path(raw_path, hide_dotfiles=config.hide_dotfiles)
            fd = open_beneath(root_fd, parts, config.symlinks)
        except BadPath:
            return _plain(404)
        except OSError as exc:
            return _plain(_open_failure(exc))
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                response = self._directory(request, raw_path, parts, fd, coding)
            elif not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return _plain(404)
            else:
                rep = open_representation(root_fd, parts, fd, st, coding, config.symlinks,
                                          config.precompressed)
                response = self._file(request, rep)
        except OSError as exc:
            return _plain(503 if exc.errno in _OUT_OF_FDS else 500)
        if response.rep is not None:
            cache.put(key, response.rep, time.monotonic())
        return response

    def _directory(self, request: _Request, raw_path: bytes, parts: list[str],
                   fd: int, coding: str | None) -> _Response:
        config, root_fd = self.config, self.server.root_fd
        try:
            if not raw_path.endswith(b"/"):  # relative links in the page need the slash
                response = _plain(301)
                # from the decoded components, never the raw target: "//evil.example/x"
                # must not become a protocol-relative Location (an open redirect)
                location = "/" + "".join(quote(part) + "/" for part in parts)
                query = request.target.partition(b"?")[2]
                if query:
                    location += "?" + query.decode("latin-1")
                response.headers.append(("Location", location))
                return response
            index = parts + [config.index]
            try:
                index_fd = open_beneath(root_fd, index, config.symlinks)
            except OSError:
                index_fd = -1
            index_st = _regular(index_fd) if index_fd >= 0 else None  # closed if not
            if index_st is not None:
                rep = open_representation(root_fd, index, index_fd, index_st, coding,
                                          config.symlinks, config.precompressed)
                return self._file(request, rep)
            if not config.listing:
                return _plain(404)
            body = listing(fd, "/" + "/".join(parts) + ("/" if parts else ""),
                           config.hide_dotfiles)
            return _Response(200, [("Content-Type", "text/html; charset=utf-8")], body,
                             length=len(body))
        finally:
            os.close(fd)

    def _validator_headers(self, rep: Representation) -> list[tuple[str, str]]:
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
        return headers

    def _fixed_head(self, rep: Representation) -> bytes:
        """The header lines of *rep*'s full 200 that are the same for every request
        (all but Date, Connection and Content-Length)."""
        if rep.head200 is None:
            headers = self._validator_headers(rep)
            headers += [("Accept-Ranges", "bytes"), ("Content-Type", rep.content_type)]
            rep.head200 = b"Server: zerocopy\r\n" + b"".join(
                f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)
        return rep.head200

    def _whole(self, rep: Representation) -> _Response:
        """The full 200 for *rep*, its constant header lines built once."""
        return _Response(200, rep=rep, spans=[Span(0, rep.size - 1)] if rep.size else [],
                         length=rep.size, fixed=self._fixed_head(rep))

    def _file(self, request: _Request, rep: Representation) -> _Response:
        """The response for *rep*; the response owns it (and closes it when done)."""
        headers = request.headers
        if _CONDITIONAL.isdisjoint(headers):  # the common case: a plain full GET
            return self._whole(rep)
        fields = self._validator_headers(rep)
        status = precondition_status(rep, headers)
        if status is not None:
            rep.close()
            # a 304 keeps the validators and has no body (RFC 9110 15.4.5)
            return _plain(412) if status == 412 else _Response(304, fields)
        spans = self._ranges(request, rep)
        if spans is None:
            return self._whole(rep)
        fields.append(("Accept-Ranges", "bytes"))
        if not spans:
            rep.close()
            response = _plain(416)
            response.headers.append(("Content-Range", f"bytes */{rep.size}"))
            return response
        if len(spans) == 1:
            span = spans[0]
            fields.append(("Content-Type", rep.content_type))
            fields.append(("Content-Range", f"bytes {span.start}-{span.end}/{rep.size}"))
            return _Response(206, fields, rep=rep, spans=spans, length=span.length)
        body = multipart(spans, rep.size, rep.content_type, os.urandom(12).hex())
        fields.append(("Content-Type", body.content_type))
        return _Response(206, fields, rep=rep, spans=spans,
                         parts=body.heads + [body.tail], length=body.length)

    def _ranges(self, request: _Request, rep: Representation) -> list[Span] | None:
        header = request.headers.get("range")
        if header is None:
            return None
        if_range = request.headers.get("if-range")
        if if_range is not None and not if_range_holds(rep, if_range):
            return None
        return parse_range(header, rep.size, self.config.max_ranges)


#: request headers that can change a file response from the plain full 200
_CONDITIONAL = frozenset(("range", "if-match", "if-none-match", "if-modified-since",
                          "if-unmodified-since"))


def _open_failure(exc: OSError) -> int:
    if exc.errno == errno.EACCES:
        return 403
    if exc.errno in _OUT_OF_FDS:
        return 503  # out of fds: the client may retry (the server logs nothing per request)
    return 404
