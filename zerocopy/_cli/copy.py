"""``zerocopy copy SRC DST``: copy a file with ``transfer()`` and say how."""

from __future__ import annotations

import argparse
from typing import BinaryIO

from .. import TransferResult, ZeroCopyError, transfer
from .common import CommandError, cannot_open

__all__ = ["ALIASES", "HELP", "NAME", "add_arguments", "describe", "open_pair", "run"]

NAME = "copy"
ALIASES: tuple[str, ...] = ()
HELP = "copy SRC to DST with the best method and say which one moved the bytes"
BACKENDS = ("native", "os", "portable")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy copy``."""
    parser.add_argument("src", metavar="SRC", help="the file (or FIFO, device) to read")
    parser.add_argument("dst", metavar="DST", help="where to write; created or truncated")
    add_transfer_options(parser)


def add_transfer_options(parser: argparse.ArgumentParser) -> None:
    """What ``copy`` and ``plan`` both take."""
    parser.add_argument("--count", type=int, metavar="N", help="copy at most N bytes")
    parser.add_argument("--offset", type=int, metavar="K",
                        help="start reading at byte K of SRC")
    parser.add_argument("--append", action="store_true",
                        help="append to DST instead of truncating it")
    parser.add_argument("--backend", choices=BACKENDS, help="force one backend")


def describe(result: TransferResult) -> str:
    """What moved the bytes, and what fell back first."""
    text = (f"{result.transferred} bytes by {result.method.value} "
            f"({result.backend} backend, eof={result.eof})")
    for fb in result.fallbacks:
        text += f"\n  fell back from {fb.method.value}: {fb.reason}"
    return text


def open_source(path: str) -> BinaryIO:
    """*path* opened for reading, or the ``cp``-style error."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise cannot_open(path, exc) from None


def open_pair(src: str, dst: str, append: bool) -> tuple[BinaryIO, BinaryIO]:
    """SRC for reading and DST for writing (created, truncated unless *append*)."""
    source = open_source(src)
    try:
        dest = open(dst, "ab" if append else "wb")  # noqa: SIM115
    except OSError as exc:
        source.close()
        raise cannot_open(dst, exc) from None
    return source, dest


def run(args: argparse.Namespace) -> int:
    """``zerocopy copy``."""
    if args.count is not None and args.count < 0 or args.offset is not None and args.offset < 0:
        raise CommandError("--count and --offset must be >= 0")
    src, dst = open_pair(args.src, args.dst, args.append)
    with src, dst:
        try:
            result = transfer(src, dst, args.count, offset=args.offset, backend=args.backend)
        except (ZeroCopyError, ValueError) as exc:
            raise CommandError(f"cannot copy {args.src!r} to {args.dst!r}: {exc}") from None
    print(describe(result))
    return 0
