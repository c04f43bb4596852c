"""``zerocopy relay LISTEN TARGET [TARGET ...]``: a TCP (or Unix) relay on one event
loop, every connection pumped by ``arelay`` (splice through pooled pipes).

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
import itertools
import os
import signal
import socket
import struct
import sys
import time

from .. import RelayError
from .._relay.aio import arelay
from .._relay.proxy_protocol import ProxyProtocolError, encode_v1, encode_v2, header_length, parse
from .common import CommandError, parse_endpoint

__all__ = ["ALIASES", "HELP", "NAME", "add_arguments", "run"]

NAME = "relay"
ALIASES: tuple[str, ...] = ()
HELP = "relay TCP or Unix connections from LISTEN to the TARGETs, both ways, with splice"

Endpoint = tuple[str, "str | int"]


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
    parser.add_argument("--method", choices=("auto", "splice", "readwrite"), default="auto",
                        help="how bytes move (default auto: splice, read/write if refused)")


def run(args: argparse.Namespace) -> int:
    """``zerocopy relay``."""
    listen = parse_endpoint(args.listen, default_host="0.0.0.0")
    targets = [parse_endpoint(t) for t in args.targets]
    if args.max_connections < 1:
        raise CommandError("--max-connections must be >= 1")
    try:
        server = _listen(listen)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    name = (f"unix:{listen[1]}" if listen[0] == "unix"
            else _show(server.getsockname()[:2]))
    print(f"relaying {name} -> {' '.join(args.targets)}", flush=True)
    return asyncio.run(_serve(server, targets, args))


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
                 args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    slots = asyncio.Semaphore(args.max_connections)
    tasks: set[asyncio.Task[None]] = set()
    order = itertools.cycle(range(len(targets)))
    accepting = asyncio.create_task(_accept_loop(server, targets, order, slots, tasks, args))
    await stop.wait()
    accepting.cancel()
    server.close()
    if tasks:
        _done, pending = await asyncio.wait(tasks, timeout=args.grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1)
    return 0


async def _accept_loop(server: socket.socket, targets: list[Endpoint],
                       order: itertools.cycle[int], slots: asyncio.Semaphore,
                       tasks: set[asyncio.Task[None]], args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await slots.acquire()  # at the limit: stop accepting (backlog holds the rest)
        try:
            client, peer = await loop.sock_accept(server)
        except OSError as exc:
            slots.release()
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                print(f"zerocopy relay: accept: {exc.strerror}; pausing 0.1 s",
                      file=sys.stderr, flush=True)
                await asyncio.sleep(0.1)  # EMFILE never kills the relay
            continue
        first = next(order)
        task = asyncio.create_task(_connection(client, peer, targets, first, args))
        tasks.add(task)
        task.add_done_callback(lambda t: _finished(t, tasks, slots))


def _finished(task: asyncio.Task[None], tasks: set[asyncio.Task[None]],
              slots: asyncio.Semaphore) -> None:
    tasks.discard(task)
    slots.release()


async def _connect(target: Endpoint, timeout: float) -> socket.socket:
    loop = asyncio.get_running_loop()
    if target[0] == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: tuple[object, ...] | str = str(target[1])
    else:
        infos = await loop.getaddrinfo(str(target[0]), int(target[1]),
                                       type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, address), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


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
        chunk = await asyncio.wait_for(loop.sock_recv(client, 4096 if length is None
                                                      else length - len(data)), 10)
        if not chunk:
            raise ProxyProtocolError("EOF before the PROXY header ended")
        data += chunk if length is None else chunk


async def _connection(client: socket.socket, peer: object, targets: list[Endpoint],
                      first: int, args: argparse.Namespace) -> None:
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
        for i in range(len(targets)):
            target = targets[(first + i) % len(targets)]
            try:
                upstream = await _connect(target, args.connect_timeout)
                target_text = _name(target)
                break
            except (OSError, TimeoutError) as exc:
                print(f"zerocopy relay: {_name(target)}: {getattr(exc, 'strerror', None) or exc}"
                      "; next target", file=sys.stderr, flush=True)
        if upstream is None:
            ended = "no-target"
            _abort(client)
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
        ab, ba, ended = result.a_to_b + len(early), result.b_to_a, result.ended
    except RelayError as exc:
        ab, ba, ended = exc.a_to_b, exc.b_to_a, f"{exc.ended} by {'client' if exc.side == 'a' else 'target'}"
    except ProxyProtocolError as exc:
        ended = f"bad PROXY header: {exc}"
        _abort(client)
    except asyncio.CancelledError:
        ended = "cut after the grace period"
        raise
    except OSError as exc:
        ended = f"error: {exc.strerror or exc}"
    finally:
        for sock in (client, upstream):
            if sock is not None:
                sock.close()
        print(f"{peer_text} -> {target_text} up={ab} down={ba} "
              f"{time.monotonic() - started:.3f}s {ended}", file=sys.stderr, flush=True)


def _abort(sock: socket.socket) -> None:
    """Reset: SO_LINGER 0 then close sends a RST, so the client sees an error."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
