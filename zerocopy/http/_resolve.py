"""The root wall: turn a request path into an open fd that is inside the served root.

Two layers, because string checks alone are not enough (aiohttp's CVE-2024-23334):

1. :func:`split_path` decodes the path once and refuses what no file name needs
   (NUL, backslashes, ``..`` segments) and, by policy, dotfiles.
2. :func:`open_beneath` opens the components relative to the root's directory fd.
   With openat2(2) (Linux 5.6+, through the compiled core) the kernel refuses any
   resolution that leaves the root (``RESOLVE_BENEATH``) and every magic link
   (``RESOLVE_NO_MAGICLINKS``); elsewhere a walk opens one component at a time with
   ``O_NOFOLLOW`` and resolves each symlink itself, never above the root.

Symlink policy (docs/serve.md): ``"inside"`` (the default) follows a link only when
its target stays inside the root; ``"never"`` refuses every link.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import Literal
from urllib.parse import unquote_to_bytes

__all__ = ["BadPath", "SymlinkPolicy", "open_beneath", "split_path"]

SymlinkPolicy = Literal["inside", "never"]

# <linux/openat2.h>
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
# O_NONBLOCK: opening a FIFO planted in the root must not block the event loop.
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
_MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS

_openat2: Callable[[int, str | bytes, int, int, int], int] | None
try:
    from zerocopy._core import openat2 as _openat2
except ImportError:  # the core is not built here: the walk serves every lookup
    _openat2 = None

_have_openat2 = _openat2 is not None


class BadPath(ValueError):
    """A request path that names no file (the server answers 404 or 400)."""


def split_path(raw: bytes, *, hide_dotfiles: bool) -> list[str]:
    """The components of a request target's path, decoded, or :class:`BadPath`.

    Percent-decoding happens exactly once (a ``%252e`` stays the name ``%2e``), so
    ``%2e%2e`` and ``%2f`` are judged as the ``..`` and ``/`` they spell; doubled
    slashes and ``.`` segments collapse.
    """
    decoded = unquote_to_bytes(raw)
    if b"\0" in decoded or b"\\" in decoded:
        raise BadPath("NUL or backslash in the path")
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        text = os.fsdecode(decoded)  # names that are not UTF-8 still exist on Linux
    parts = [part for part in text.split("/") if part not in ("", ".")]
    for part in parts:
        if part == "..":
            raise BadPath("a '..' segment")
        if hide_dotfiles and part.startswith("."):
            raise BadPath("a dotfile")
    return parts


def open_beneath(root_fd: int, parts: list[str], policy: SymlinkPolicy = "inside") -> int:
    """Open the file or directory *parts* names under *root_fd*, read-only, never
    outside it; returns a new fd.  Raises OSError (ENOENT, ELOOP, EXDEV, ...)."""
    global _have_openat2
    if not parts:
        return os.open(".", _OPEN_FLAGS, dir_fd=root_fd)
    if _have_openat2 and _openat2 is not None:
        resolve = _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS
        if policy == "never":
            resolve |= _RESOLVE_NO_SYMLINKS
        try:
            return _openat2(root_fd, "/".join(parts), _OPEN_FLAGS, resolve, 0)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp filter
                raise
            _have_openat2 = False  # this kernel has none: the walk from now on
    return _walk(root_fd, parts, policy)


def _walk(root_fd: int, parts: list[str], policy: SymlinkPolicy) -> int:
    """openat2's RESOLVE_BENEATH by hand: one ``O_NOFOLLOW`` open per component,
    each symlink read and spliced into the remaining components, ``..`` popping a
    directory of our own stack (never the root itself)."""
    stack: list[int] = []  # fds of the directories below the root, each ours
    pending = list(reversed(parts))
    hops = 0
    try:
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if not stack:
                    raise OSError(errno.EXDEV, "path escapes the root", name)
                os.close(stack.pop())
                continue
            here = stack[-1] if stack else root_fd
            try:
                fd = os.open(name, _OPEN_FLAGS | os.O_NOFOLLOW, dir_fd=here)
            except OSError as exc:
                if exc.errno != errno.ELOOP or policy == "never":
                    raise
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise
                target = os.readlink(name, dir_fd=here)
                if target.startswith("/"):
                    raise OSError(errno.EXDEV, "absolute symlink", name) from None
                pending.extend(reversed(target.split("/")))
                continue
            if pending and not stat.S_ISDIR(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, "not a directory", name)
            stack.append(fd)
        if not stack:  # the path came back to the root itself
            return os.open(".", _OPEN_FLAGS, dir_fd=root_fd)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)
