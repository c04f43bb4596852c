"""``zerocopy plan SRC DST``: the methods ``copy`` would try for the pair, without
moving a byte or touching DST."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from .. import ZeroCopyError, plan
from .common import CommandError, cannot_open
from .common import add_transfer_options, open_source

__all__ = ["ALIASES", "HELP", "NAME", "add_arguments", "run"]

NAME = "plan"
ALIASES: tuple[str, ...] = ()
HELP = "show the methods copy would try for SRC and DST, and why, moving nothing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy plan``: those of ``copy``."""
    parser.add_argument("src", metavar="SRC")
    parser.add_argument("dst", metavar="DST", help="left as it is; need not exist")
    add_transfer_options(parser)


@contextlib.contextmanager
def _destination(path: str, append: bool) -> Iterator[BinaryIO]:
    """DST as ``copy`` would write it, without creating or truncating it: an existing
    DST opened write-only (with O_APPEND only for ``--append``); a missing one stood in
    for by an unnamed file in its directory (O_TMPFILE: nothing appears, same
    filesystem, so the same copy_file_range answer)."""
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_APPEND if append else 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        try:
            stand_in = tempfile.TemporaryFile(dir=parent)
        except OSError as exc:
            raise cannot_open(path, exc) from None
        with stand_in:
            yield stand_in
        return
    except OSError as exc:
        raise cannot_open(path, exc) from None
    with open(fd, "wb", buffering=0, closefd=True) as dst:
        yield dst


def run(args: argparse.Namespace) -> int:
    """``zerocopy plan``."""
    with open_source(args.src) as src, _destination(args.dst, args.append) as dst:
        try:
            the_plan = plan(src, dst, offset=args.offset, backend=args.backend)
        except (ZeroCopyError, ValueError) as exc:
            raise CommandError(f"cannot plan {args.src!r} to {args.dst!r}: {exc}") from None
    print(f"{the_plan.src.value} -> {the_plan.dst.value} with the {the_plan.backend} backend:")
    for step in the_plan.steps:
        print(f"  try  {step.method.value:16} {step.reason}")
    for step in the_plan.skipped:
        print(f"  skip {step.method.value:16} {step.reason}")
    return 0
