"""``zerocopy recv [HOST:]PORT FILE``: accept one TCP connection and write what it
sends to FILE (``-`` for stdout) with splice, until the peer's EOF."""

from __future__ import annotations

import argparse
import socket
import sys
import time

from .. import ZeroCopyError, transfer
from .common import CommandError, cannot_open, parse_endpoint, rate_line
from .progress import Progress

__all__ = ["ALIASES", "HELP", "NAME", "add_arguments", "run"]

NAME = "recv"
ALIASES: tuple[str, ...] = ()
HELP = "accept one connection on [HOST:]PORT and write its bytes to FILE (- for stdout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy recv``."""
    parser.add_argument("listen", metavar="[HOST:]PORT", help="where to listen")
    parser.add_argument("file", metavar="FILE", help="where to write; - for stdout")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N bytes")
    parser.add_argument("--offset", type=int, metavar="K",
                        help="write at byte K of FILE (kept, not truncated)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="give up after S seconds with no byte (default: wait)")


def run(args: argparse.Namespace) -> int:
    """``zerocopy recv``."""
    if args.count is not None and args.count < 0 or args.offset is not None and args.offset < 0:
        raise CommandError("--count and --offset must be >= 0")
    host, port = parse_endpoint(args.listen, default_host="0.0.0.0")
    try:
        server = socket.create_server((str(host), int(port)))
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    # Where to connect, flushed, so a script can wait for it.
    print(f"listening on {host}:{server.getsockname()[1]}", file=sys.stderr, flush=True)
    with server:
        conn, _ = server.accept()
    with conn:
        if args.file == "-":
            sys.stdout.flush()
            return _receive(conn, sys.stdout.buffer, args)
        try:
            dest = open(args.file, "r+b" if args.offset else "wb")  # noqa: SIM115
        except FileNotFoundError:
            dest = open(args.file, "wb")  # noqa: SIM115
        except OSError as exc:
            raise cannot_open(args.file, exc) from None
        with dest:
            if args.offset:
                dest.seek(args.offset)
            return _receive(conn, dest, args)


def _receive(conn: socket.socket, dest: object, args: argparse.Namespace) -> int:
    progress = Progress("recv", args.count)
    started = time.monotonic()
    try:
        result = transfer(conn, dest, args.count, timeout=args.timeout, progress=progress)
    except (ZeroCopyError, OSError, ValueError) as exc:
        raise CommandError(f"cannot receive into {args.file!r}: {exc}") from None
    finally:
        progress.close()
    print(f"{rate_line(result.transferred, time.monotonic() - started)} "
          f"by {result.method.value}", file=sys.stderr)
    return 0
