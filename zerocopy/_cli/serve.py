"""``zerocopy serve``: serve a directory over HTTP with zerocopy.http.

The first line on stdout, flushed at once, is ``serving DIR at http://HOST:PORT/``
with the port actually bound, so a script or a test can start it with ``--port 0``
and read where it went.  SIGTERM and SIGINT drain: stop accepting, let responses in
flight finish for up to ``--grace`` seconds, exit 0.  ``--workers N`` runs N
processes, each with its own listening socket on the same port (``SO_REUSEPORT``:
the kernel spreads connections over them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from .common import CommandError, add_loop_option, check_loop, run_on_loop

__all__ = ["ALIASES", "DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

NAME = "serve"
ALIASES: tuple[str, ...] = ()
HELP = "serve a directory over HTTP, sending files with sendfile"
DESCRIPTION = ("Serve DIR over HTTP/1.1 (GET and HEAD, ranges, validators, precompressed "
               "sidecars), every path held inside DIR.  Needs the 'serve' extra.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy serve``."""
    parser.add_argument("dir", nargs="?", default=".", metavar="DIR",
                        help="the directory to serve (default: the current one)")
    parser.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, metavar="N",
                        help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes sharing the port with SO_REUSEPORT (default 1)")
    parser.add_argument("--grace", type=float, default=10.0, metavar="S",
                        help="seconds responses in flight get on SIGTERM (default 10)")
    add_loop_option(parser)
    parser.add_argument("--no-listing", action="store_true",
                        help="answer 404 for a directory without index.html")
    parser.add_argument("--show-dotfiles", action="store_true",
                        help="serve names that start with a dot (hidden by default)")
    parser.add_argument("--symlinks", choices=("inside", "never"), default="inside",
                        help="follow symlinks whose target stays inside DIR, or none")
    parser.add_argument("--cache-control", metavar="VALUE",
                        help="Cache-Control header of every file response")
    parser.add_argument("--max-ranges", type=int, default=16, metavar="N",
                        help="ranges allowed in one request (more: the header is ignored)")
    parser.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                        help="seconds to receive a request's headers (else 408)")
    parser.add_argument("--keepalive-timeout", type=float, default=30.0, metavar="S",
                        help="seconds an idle connection waits for its next request")
    parser.add_argument("--min-receive-rate", type=int, default=100, metavar="B",
                        help="bytes per second a request head must arrive at, judged "
                             "after its first second (else 408; 0: off; default 100)")
    parser.add_argument("--max-connections", type=int, default=1024, metavar="N",
                        help="connections at once per worker; more wait in the kernel's "
                             "backlog (default 1024)")
    parser.add_argument("--access-log", default="-", metavar="PATH",
                        help="access log file, '-' for stderr (default), 'off' for none")


def _check(args: argparse.Namespace) -> None:
    if not os.path.isdir(args.dir):
        raise CommandError(f"not a directory: {args.dir!r}")
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be 0 to 65535, got {args.port}")
    if args.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {args.workers}")
    for name, value, least in (("--grace", args.grace, 0), ("--max-ranges", args.max_ranges, 1),
                               ("--max-connections", args.max_connections, 1),
                               ("--min-receive-rate", args.min_receive_rate, 0)):
        if value < least:
            raise CommandError(f"{name} must be at least {least}, got {value:g}")
    try:
        import httptools  # noqa: F401
    except ImportError:
        raise CommandError("serve needs httptools: pip install 'zerocopy[serve]'") from None
    check_loop(args)


def _config(args: argparse.Namespace, log: Any) -> Any:
    from ..http import ServeConfig

    return ServeConfig(symlinks=args.symlinks, hide_dotfiles=not args.show_dotfiles,
                       listing=not args.no_listing, cache_control=args.cache_control,
                       max_ranges=args.max_ranges, header_timeout=args.header_timeout,
                       keepalive_timeout=args.keepalive_timeout,
                       min_receive_rate=args.min_receive_rate,
                       max_connections=args.max_connections, access_log=log)


def _open_log(path: str) -> Any:
    if path == "off":
        return None
    if path == "-":
        return sys.stderr
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot open {path!r}: {exc.strerror or exc}") from None


def _reserve(host: str, port: int) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket: it holds the port (a real one
    when *port* is 0) for the workers without taking any connection itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


async def _serve(args: argparse.Namespace, port: int, reuse_port: bool,
                 ready: Callable[[str], None]) -> None:
    from ..http import FileServer

    log = _open_log(args.access_log)
    server = FileServer(args.dir, host=args.bind, port=port, config=_config(args, log),
                        reuse_port=reuse_port)
    try:
        await server.start()
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.bind}:{port}: "
                           f"{exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # the handlers before the first line: a script may send SIGTERM as soon as it reads it
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ready(server.url)
    forever = asyncio.ensure_future(server.serve_forever())
    await stop.wait()
    server.close()
    await server.wait_closed(grace=args.grace)
    forever.cancel()
    await asyncio.gather(forever, return_exceptions=True)


def _run_loop(args: argparse.Namespace, port: int, reuse_port: bool,
              ready: Callable[[str], None]) -> None:
    run_on_loop(args.loop, _serve(args, port, reuse_port, ready))


def _tell(fd: int) -> None:
    os.write(fd, b"1")


def _workers(args: argparse.Namespace) -> int:
    holder = _reserve(args.bind, args.port)
    port = holder.getsockname()[1]
    children: list[int] = []
    # each worker writes one byte once it listens: the first line must not come
    # before every worker can take connections
    ready_r, ready_w = os.pipe()
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            status = 0
            try:
                _run_loop(args, port, True, lambda _url: _tell(ready_w))
            except BaseException:
                status = 1
            os._exit(status)
        children.append(pid)
    os.close(ready_w)
    got = 0
    while got < args.workers:
        byte = os.read(ready_r, args.workers)
        if not byte:
            break  # a worker died before listening: its status says so below
        got += len(byte)
    os.close(ready_r)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    host = f"[{args.bind}]" if ":" in args.bind else args.bind
    print(f"serving {args.dir} at http://{host}:{port}/", flush=True)
    worst = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        worst = max(worst, os.waitstatus_to_exitcode(status))
    holder.close()
    return 1 if worst else 0


def run(args: argparse.Namespace) -> int:
    """``zerocopy serve``."""
    _check(args)
    if args.workers > 1:
        return _workers(args)
    _run_loop(args, args.port, False,
              lambda url: print(f"serving {args.dir} at {url}", flush=True))
    return 0
