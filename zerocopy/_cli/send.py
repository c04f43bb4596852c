"""``zerocopy send FILE HOST:PORT``: a file to a TCP peer with sendfile (``nc -l``,
``socat TCP-LISTEN`` or ``zerocopy recv`` on the other end)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

from .. import ZeroCopyError, transfer
from .common import CommandError, open_source, parse_endpoint, rate_line
from .progress import Progress

__all__ = ["ALIASES", "HELP", "NAME", "add_arguments", "run"]

NAME = "send"
ALIASES: tuple[str, ...] = ()
HELP = "send a file to HOST:PORT with sendfile, then close; say bytes, seconds and GB/s"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy send``."""
    parser.add_argument("file", metavar="FILE", help="the file to send")
    parser.add_argument("target", metavar="HOST:PORT", help="where to connect ([v6]:port too)")
    parser.add_argument("--count", type=int, metavar="N", help="send at most N bytes")
    parser.add_argument("--offset", type=int, metavar="K", help="start at byte K of FILE")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="connect and per-write timeout in seconds (default 30)")


def run(args: argparse.Namespace) -> int:
    """``zerocopy send``."""
    if args.count is not None and args.count < 0 or args.offset is not None and args.offset < 0:
        raise CommandError("--count and --offset must be >= 0")
    host, port = parse_endpoint(args.target)
    with open_source(args.file) as source:
        size = os.fstat(source.fileno()).st_size - (args.offset or 0)
        total = min(size, args.count) if args.count is not None else size
        try:
            sock = (_unix(str(port)) if host == "unix"
                    else socket.create_connection((host, int(port)), timeout=args.timeout))
        except OSError as exc:
            raise CommandError(f"cannot connect to {args.target}: {exc.strerror or exc}") from None
        progress = Progress(os.path.basename(args.file), max(total, 0))
        started = time.monotonic()
        with sock:
            try:
                result = transfer(source, sock, args.count, offset=args.offset,
                                  timeout=args.timeout, progress=progress)
                sock.shutdown(socket.SHUT_WR)
            except (ZeroCopyError, OSError, ValueError) as exc:
                raise CommandError(f"cannot send {args.file!r} to {args.target}: {exc}") from None
            finally:
                progress.close()
    print(f"{rate_line(result.transferred, time.monotonic() - started)} "
          f"by {result.method.value}", file=sys.stderr)
    return 0


def _unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock
