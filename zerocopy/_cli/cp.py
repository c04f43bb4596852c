"""``zerocopy cp SRC... DST`` (alias ``copy``): copy files, and with ``-r`` trees,
with ``transfer()``, saying which method moved each file's bytes.

Like ``cp``: DST an existing directory receives ``DST/basename(SRC)``; several
sources need a directory; a directory without ``-r`` is skipped with a message; a
failing file is reported on stderr and the others still copy, exit status 1.
Holes of a sparse file are kept (SEEK_DATA/SEEK_HOLE, then ftruncate to the size),
so a 4 GiB sparse file costs only its data.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
from collections.abc import Callable
from typing import BinaryIO

from .. import TransferResult, ZeroCopyError, transfer
from .common import CommandError, add_transfer_options, cannot_open, open_source
from .progress import Progress

__all__ = ["ALIASES", "HELP", "NAME", "add_arguments", "describe", "open_pair", "run"]

NAME = "cp"
ALIASES: tuple[str, ...] = ("copy",)
HELP = "copy files (and with -r trees) with the best method and say which one moved the bytes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy cp``."""
    parser.add_argument("paths", nargs="+", metavar="SRC... DST",
                        help="files (or FIFOs, devices) to read, then where to write")
    parser.add_argument("-r", "-R", "--recursive", action="store_true",
                        help="copy directories and everything under them")
    parser.add_argument("-p", "--preserve", action="store_true",
                        help="keep mode, access and modification times")
    add_transfer_options(parser)


def describe(result: TransferResult) -> str:
    """What moved the bytes, and what fell back first."""
    text = (f"{result.transferred} bytes by {result.method.value} "
            f"({result.backend} backend, eof={result.eof})")
    for fb in result.fallbacks:
        text += f"\n  fell back from {fb.method.value}: {fb.reason}"
    return text


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
    """``zerocopy cp``."""
    if args.count is not None and args.count < 0 or args.offset is not None and args.offset < 0:
        raise CommandError("--count and --offset must be >= 0")
    if len(args.paths) < 2:
        raise CommandError(f"missing destination file operand after {args.paths[0]!r}")
    *sources, dst = args.paths
    into_dir = os.path.isdir(dst)
    if len(sources) > 1 and not into_dir:
        raise CommandError(f"target {dst!r} is not a directory")
    status = 0
    for src in sources:
        target = os.path.join(dst, os.path.basename(src.rstrip("/"))) if into_dir else dst
        try:
            copy_one(src, target, args)
        except CommandError as exc:
            if len(sources) == 1:
                raise
            print(f"zerocopy: {exc}", file=sys.stderr)
            status = 1
    return status


def copy_one(src: str, dst: str, args: argparse.Namespace) -> None:
    """One operand: a file, or a tree with ``-r``."""
    if os.path.isdir(src):
        if not args.recursive:
            raise CommandError(f"-r not specified; omitting directory {src!r}")
        copy_tree(src, dst, args)
    else:
        copy_file(src, dst, args)


def copy_tree(src: str, dst: str, args: argparse.Namespace) -> None:
    """*src* and everything under it to *dst*; errors per file, like ``cp -r``."""
    if os.path.realpath(dst).startswith(os.path.realpath(src) + os.sep):
        raise CommandError(f"cannot copy a directory, {src!r}, into itself, {dst!r}")
    try:
        os.makedirs(dst, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create directory {dst!r}: {exc.strerror}") from None
    failed: list[str] = []
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        target = os.path.join(dst, entry.name)
        try:
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
            elif entry.is_dir():
                copy_tree(entry.path, target, args)
            else:
                copy_file(entry.path, target, args)
        except CommandError as exc:
            failed.append(str(exc))
        except OSError as exc:
            failed.append(f"cannot create {target!r}: {exc.strerror}")
    if args.preserve:
        preserve(src, dst)
    if failed:
        for line in failed[:-1]:
            print(f"zerocopy: {line}", file=sys.stderr)
        raise CommandError(failed[-1])


def copy_file(src: str, dst: str, args: argparse.Namespace) -> None:
    """One file, holes kept when it is a whole regular-file copy."""
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        raise CommandError(f"{src!r} and {dst!r} are the same file")
    source, dest = open_pair(src, dst, args.append)
    with source, dest:
        st = os.fstat(source.fileno())
        whole = args.count is None and args.offset is None and not args.append
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        progress = Progress(os.path.basename(src), size if whole else args.count)
        try:
            if whole and size is not None and st.st_blocks * 512 < size:
                result = copy_sparse(source, dest, size, progress)
            else:
                result = transfer(source, dest, args.count, offset=args.offset,
                                  backend=args.backend, progress=progress)
        except (ZeroCopyError, ValueError) as exc:
            raise CommandError(f"cannot copy {src!r} to {dst!r}: {exc}") from None
        finally:
            progress.close()
    if args.preserve:
        preserve(src, dst)
    print(describe(result) if result is not None else f"0 bytes ({src})")


def copy_sparse(source: BinaryIO, dest: BinaryIO, size: int,
                progress: Progress) -> TransferResult | None:
    """Copy only the data extents (SEEK_DATA/SEEK_HOLE), then set the size: the
    holes stay holes and a mostly empty 4 GiB file costs its data, not 4 GiB."""
    fd = source.fileno()
    offset, moved, last = 0, 0, None
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after offset: a hole to the end
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        dest.seek(start)
        last = transfer(source, dest, end - start, offset=start,
                        progress=_shifted(progress, moved))
        moved += last.transferred
        offset = end
    os.ftruncate(dest.fileno(), size)
    return last


def _shifted(progress: Progress, base: int) -> Callable[[int], None]:
    """A per-extent progress callback that reports the whole file's bytes."""
    return lambda done: progress(base + done)


def preserve(src: str, dst: str) -> None:
    """``-p``: mode bits, then access and modification times (nanoseconds)."""
    st = os.stat(src)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
