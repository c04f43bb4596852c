"""``zerocopy relay LISTEN TARGET [TARGET ...]``: a TCP (or Unix) relay on one event
loop, every connection pumped by ``arelay``: the core's pump in nowait steps, splice
through pooled pipes (at most ``--max-pipes``) or a recv/send copy (``--method``).

Targets are tried in round-robin, each with a connect timeout, the next one on
failure; when all fail the client is reset (an abort, never a clean EOF).  At
``--max-connections`` the relay stops accepting until one ends; EMFILE pauses
accepting for a moment instead of killing the relay.  SIGTERM/SIGINT stop accepting
and let connections drain for ``--grace`` seconds; exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from .. import RelayError
from .._accept import Acceptor
from .._relay.aio import arelay
from .._relay.aio import start as relay_start
from .._relay.common import AUTO_METHOD, METHODS, RelayResult, pipe_budget, reset
from .._relay.proxy_protocol import ProxyProtocolError, encode_v1, encode_v2, header_length, parse
from .common import CommandError, add_loop_option, check_loop, parse_endpoint, run_on_loop

__all__ = ["ALIASES", "HELP", "NAME", "add_arguments", "run"]

NAME = "relay"
ALIASES: tuple[str, ...] = ()
HELP = "relay TCP or Unix connections from LISTEN to the TARGETs, both ways, with splice"

Endpoint = tuple[str, "str | int"]

#: Seconds accepting pauses after EMFILE and the like (zerocopy._accept).
ACCEPT_PAUSE = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy relay``."""
    parser.add_argument("listen", metavar="LISTEN", help="[HOST:]PORT or unix:PATH")
    parser.add_argument("targets", nargs="+", metavar="TARGET",
                        help="HOST:PORT, [v6]:PORT or unix:PATH; several: round-robin")
    parser.add_argument("--max-connections", type=int, default=1000, metavar="N",
                        help="stop accepting while N connections are open (default 1000)")
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="S",
                        help="close a connection after S seconds without a byte")
    parser.add_argument("--connect-timeout", type=float, default=5.0, metavar="S",
                        help="per-target connect timeout (default 5)")
    parser.add_argument("--grace", type=float, default=10.0, metavar="S",
                        help="on SIGTERM/SIGINT, let connections drain S seconds (default 10)")
    parser.add_argument("--send-proxy", choices=("v1", "v2"),
                        help="send a PROXY protocol header to the target")
    parser.add_argument("--accept-proxy", action="store_true",
                        help="read a PROXY protocol header (v1 or v2) from each client")
    parser.add_argument("--method", choices=METHODS,
                        default="auto",
                        help="how bytes move: splice through pooled pipes, or copy with "
                             "recv/send through a buffer of up to 1 MiB (readwrite: the same); "
                             f"default auto, which is {'splice' if AUTO_METHOD == 'splice' else 'copy'} "
                             "(docs/relay.md)")
    add_loop_option(parser)
    parser.add_argument("--max-pipes", type=int, default=pipe_budget.limit, metavar="N",
                        help="splice pipes in use at once, two per connection; past "
                             f"that a connection copies (default {pipe_budget.limit})")


def run(args: argparse.Namespace) -> int:
    """``zerocopy relay``."""
    listen = parse_endpoint(args.listen, default_host="0.0.0.0")
    targets = [parse_endpoint(t) for t in args.targets]
    if args.max_connections < 1:
        raise CommandError("--max-connections must be >= 1")
    if args.max_pipes < 0:
        raise CommandError("--max-pipes must be >= 0")
    check_loop(args)
    pipe_budget.limit = args.max_pipes
    try:
        server = _listen(listen)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    name = (f"unix:{listen[1]}" if listen[0] == "unix"
            else _show(server.getsockname()[:2]))
    return int(run_on_loop(args.loop, _serve(server, targets, args,
                                             f"relaying {name} -> {' '.join(args.targets)}")))


def _warn_accept(exc: OSError, seconds: float) -> None:
    print(f"zerocopy relay: accept: {exc.strerror or exc}; pausing {seconds:g} s",
          file=sys.stderr, flush=True)


def _show(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def _listen(listen: Endpoint) -> socket.socket:
    if listen[0] == "unix":
        path = str(listen[1])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        sock.bind(path)
        sock.listen(512)
    else:
        family = socket.AF_INET6 if ":" in str(listen[0]) else socket.AF_INET
        sock = socket.create_server((str(listen[0]), int(listen[1])), family=family,
                                    backlog=512)
    sock.setblocking(False)
    return sock


async def _serve(server: socket.socket, targets: list[Endpoint],
                 args: argparse.Namespace, first_line: str) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # the first line only once SIGTERM drains: a script may send it as soon as it reads it
    print(first_line, flush=True)
    order = itertools.cycle(range(len(targets)))
    resolved = [_numeric(t) for t in targets]

    def start(client: socket.socket, peer: object) -> asyncio.Future[Any]:
        first = next(order)
        at_once = _start_at_once(loop, client, peer, targets, resolved, first, args)
        if at_once is not None:
            return at_once
        return loop.create_task(_connection(client, peer, targets, resolved, first, args))

    tasks: set[asyncio.Future[Any]] = set()

    def take(client: socket.socket, peer: object) -> None:
        task = start(client, peer)
        tasks.add(task)
        task.add_done_callback(finished)

    def finished(task: asyncio.Future[Any]) -> None:
        tasks.discard(task)
        acceptor.watch()  # below the limit again

    acceptor = Acceptor(loop, server, take, lambda: len(tasks) < args.max_connections,
                        _warn_accept, ACCEPT_PAUSE)
    acceptor.watch()
    await stop.wait()
    acceptor.stop()
    server.close()
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=args.grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1)
    return 0


def _start_at_once(loop: asyncio.AbstractEventLoop, client: socket.socket, peer: object,
                   targets: list[Endpoint], resolved: list[tuple[int, object] | None],
                   first: int, args: argparse.Namespace) -> asyncio.Future[Any] | None:
    """The common case in the accept's own loop pass, without a task: no PROXY header,
    a numeric target that is connected when connect returns (loopback).  Profiled
    for issue 10: the task, its wake-ups and the connect wait were a third of the
    relay's own time per connection.  None: use the task, which does everything else
    (waits, names, the next target, the PROXY protocol)."""
    target = resolved[first]
    if args.accept_proxy or args.send_proxy or target is None:
        return None
    started = time.monotonic()
    family, address = target
    try:
        upstream, err = _begin_connect(family, address)
    except OSError:
        return None
    driver = None
    if not err:
        try:
            _no_delay(client)
            driver = relay_start(loop, client, upstream, args.idle_timeout, args.method)
        except OSError:
            pass
    if driver is None:
        upstream.close()  # the task connects again, and says why it could not
        return None
    peer_text = _show(peer[:2]) if isinstance(peer, tuple) else "unix"
    target_text = _name(targets[first])

    def ended(done: asyncio.Future[RelayResult]) -> None:
        if done.cancelled():
            driver.cancel(asyncio.CancelledError())
            ab, ba, how = driver.pump.moved[0], driver.pump.moved[1], "cut after the grace period"
        elif (exc := done.exception()) is not None:
            ab, ba, how = _failed(exc)
        else:
            result = done.result()
            ab, ba, how = result.a_to_b, result.b_to_a, f"{result.ended} {_via(result)}"
        client.close()
        upstream.close()
        _log(peer_text, target_text, ab, ba, started, how)

    driver.done.add_done_callback(ended)
    return driver.done


def _failed(exc: BaseException) -> tuple[int, int, str]:
    """Bytes each way and the log's ending for a relay that raised *exc*."""
    if isinstance(exc, RelayError):
        return exc.a_to_b, exc.b_to_a, f"{exc.ended} by {'client' if exc.side == 'a' else 'target'}"
    return 0, 0, f"error: {getattr(exc, 'strerror', None) or exc}"


def _via(result: RelayResult) -> str:
    """How the bytes went each way: "splice", "copy", or "splice/copy" (up/down)."""
    up, down = (("copy" if m == "readwrite" else m)
                for m in (result.method_a_to_b, result.method_b_to_a))
    return up if up == down else f"{up}/{down}"


def _log(peer: str, target: str, ab: int, ba: int, started: float, how: str) -> None:
    # One write per line (print writes the end of line apart).
    sys.stderr.write(f"{peer} -> {target} up={ab} down={ba} "
                     f"{time.monotonic() - started:.3f}s {how}\n")


def _numeric(target: Endpoint) -> tuple[int, object] | None:
    """(family, address) for a unix path or a numeric IP; None for a name, which is
    looked up for every connection (so a changed DNS answer is followed)."""
    if target[0] == "unix":
        return socket.AF_UNIX, str(target[1])
    try:
        ip = ipaddress.ip_address(str(target[0]))
    except ValueError:
        return None
    return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), (str(ip), int(target[1]))


async def _connect(target: Endpoint, resolved: tuple[int, object] | None,
                   timeout: float) -> socket.socket:
    loop = asyncio.get_running_loop()
    if resolved is None:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(str(target[0]), int(target[1]),
                                           type=socket.SOCK_STREAM)
        resolved = int(infos[0][0]), infos[0][4]
    family, address = resolved
    # One writer watch and one timer while the handshake goes on, where
    # ``asyncio.timeout`` around ``loop.sock_connect`` costs a future, a done callback
    # and a timeout object more per connection (profiled: issue 10's conn/s).
    sock, err = _begin_connect(family, address)
    try:
        if err == errno.EINPROGRESS:
            await _writable(loop, sock, timeout)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
    except BaseException:
        sock.close()
        raise
    return sock


def _begin_connect(family: int, address: object) -> tuple[socket.socket, int]:
    """A non-blocking socket connecting to *address*, and how far it got: 0 when
    connected, EINPROGRESS while the handshake goes on, else the error.  On loopback
    the handshake is done inside connect (the SYN and SYN-ACK are processed before
    the call returns), so there is no writer wait at all, one loop pass less."""
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        _no_delay(sock)
        err = sock.connect_ex(address)  # type: ignore[arg-type]
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0 and not _established(sock):
                err = errno.EINPROGRESS
    except BaseException:
        sock.close()
        raise
    return sock, err


def _no_delay(sock: socket.socket) -> None:
    # Small writes (a request, an echo) go out at once, as haproxy's do.
    if sock.family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                    timeout: float) -> None:
    ready = loop.create_future()
    fd = sock.fileno()
    loop.add_writer(fd, _settle, ready, None)
    timer = loop.call_later(timeout, _settle, ready,
                            TimeoutError(f"connect timed out after {timeout:g} s"))
    try:
        await ready
    finally:
        loop.remove_writer(fd)
        timer.cancel()


def _established(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:  # ENOTCONN: still in the handshake
        return False
    return True


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if not future.done():
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)


def _name(target: Endpoint) -> str:
    return f"unix:{target[1]}" if target[0] == "unix" else _show((str(target[0]), int(target[1])))


async def _read_proxy_header(client: socket.socket) -> tuple[bytes, object]:
    """The client's PROXY header (v1 or v2), and the bytes after it already read."""
    loop = asyncio.get_running_loop()
    data = b""
    while True:
        length = header_length(data)
        if length is not None and len(data) >= length:
            return data[length:], parse(data[:length])
        async with asyncio.timeout(10):
            chunk = await loop.sock_recv(client, 4096 if length is None
                                         else length - len(data))
        if not chunk:
            raise ProxyProtocolError("EOF before the PROXY header ended")
        data += chunk


async def _connection(client: socket.socket, peer: object, targets: list[Endpoint],
                      resolved: list[tuple[int, object] | None], first: int,
                      args: argparse.Namespace) -> None:
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    peer_text = _show(peer[:2]) if isinstance(peer, tuple) else "unix"
    target_text, ended, ab, ba = "-", "eof", 0, 0
    upstream: socket.socket | None = None
    try:
        early = b""
        source = peer if isinstance(peer, tuple) else None
        if args.accept_proxy:
            early, header = await _read_proxy_header(client)
            source = getattr(header, "source", None) or source
            if source:
                peer_text = _show(source[:2])
        _no_delay(client)
        for i in range(len(targets)):
            at = (first + i) % len(targets)
            target = targets[at]
            try:
                upstream = await _connect(target, resolved[at], args.connect_timeout)
                target_text = _name(target)
                break
            except (OSError, TimeoutError) as exc:
                print(f"zerocopy relay: {_name(target)}: {getattr(exc, 'strerror', None) or exc}"
                      "; next target", file=sys.stderr, flush=True)
        if upstream is None:
            ended = "no-target"
            reset(client)
            return
        if args.send_proxy:
            local = client.getsockname()
            src = source[:2] if isinstance(source, tuple) else None
            dst = local[:2] if isinstance(local, tuple) else None
            encode = encode_v1 if args.send_proxy == "v1" else encode_v2
            await loop.sock_sendall(upstream, encode(src, dst))
        if early:
            await loop.sock_sendall(upstream, early)
        result = await arelay(client, upstream, idle_timeout=args.idle_timeout,
                              method=args.method)
        ab, ba = result.a_to_b + len(early), result.b_to_a
        ended = f"{result.ended} {_via(result)}"
    except RelayError as exc:
        ab, ba, ended = _failed(exc)
    except ProxyProtocolError as exc:
        ended = f"bad PROXY header: {exc}"
        reset(client)
    except asyncio.CancelledError:
        ended = "cut after the grace period"
        raise
    except OSError as exc:
        ended = f"error: {exc.strerror or exc}"
    finally:
        for sock in (client, upstream):
            if sock is not None:
                sock.close()
        _log(peer_text, target_text, ab, ba, started, ended)
