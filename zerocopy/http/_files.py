"""What a request names on disk: the representation to send, its validators, the
directory listing, and the precondition rules of RFC 9110 section 13.

Everything here works on fds opened beneath the root (:mod:`._resolve`); the size
and times come from ``fstat`` of the open fd, never from a ``stat`` of the path, so
a file replaced between the two can never be sent with the other's length
(aiohttp #8013).
"""

from __future__ import annotations

import html
import mimetypes
import os
import stat
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote

from ._resolve import SymlinkPolicy, open_beneath

__all__ = ["Representation", "etag_of", "identity_of", "listing", "open_representation",
           "precondition_status"]

#: The sidecar suffix of each content coding, in the server's order of preference.
SIDECARS: tuple[tuple[str, str], ...] = (("br", ".br"), ("zstd", ".zst"), ("gzip", ".gz"))


@dataclass(slots=True)
class Representation:
    """An open regular file to send, and what the headers say about it.

    The fd is shared by its owners (the open-file cache and each response in
    flight): :meth:`hold` adds one, :meth:`close` drops one, and the last closes the
    fd, so an entry evicted mid-send keeps its fd until that send ends.
    """

    fd: int
    size: int
    content_type: str
    etag: str | None
    last_modified: str | None
    mtime: int | None
    encoding: str | None = None
    #: (dev, ino, size, mtime_ns) from the fstat the representation was made from
    identity: tuple[int, int, int, int] = (0, 0, 0, 0)
    #: the constant header lines of its full 200 response, built once (see _server)
    head200: bytes | None = None
    owners: int = 1

    def hold(self) -> Representation:
        self.owners += 1
        return self

    def close(self) -> None:
        self.owners -= 1
        if self.owners == 0:
            os.close(self.fd)


def etag_of(st: os.stat_result) -> str | None:
    """A strong ETag from the file's identity, or None when its mtime means
    nothing: 0 or 1 second, as in Nix stores and reproducible builds, where every
    version of a file would share one tag (Caddy #5548)."""
    if st.st_mtime_ns < 2_000_000_000:
        return None
    return f'"{st.st_dev:x}-{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def content_type_of(name: str) -> str:
    """``Content-Type`` from the extension (stdlib mimetypes); text gets a charset
    because browsers otherwise guess one (RFC 9110 8.3.1)."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in ("application/javascript",
                                                  "application/json"):
        return f"{guessed}; charset=utf-8"
    return guessed


def _accepted(accept_encoding: str) -> set[str]:
    """The codings *accept_encoding* allows (q=0 refuses one; RFC 9110 12.5.3)."""
    accepted: set[str] = set()
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        q = params.strip()
        if q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        accepted.add(coding.strip().lower())
    if "x-gzip" in accepted:
        accepted.add("gzip")
    return accepted


def _regular(fd: int) -> os.stat_result | None:
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        return st
    os.close(fd)
    return None


def open_representation(root_fd: int, parts: list[str], fd: int, st: os.stat_result,
                        accept_encoding: str | None, policy: SymlinkPolicy,
                        precompressed: bool) -> Representation:
    """The representation of the regular file *fd* (named *parts*): a precompressed
    sidecar beside it when the client accepts its coding, else the file itself.
    Takes ownership of *fd*."""
    content_type = content_type_of(parts[-1])
    if precompressed and accept_encoding:
        accepted = _accepted(accept_encoding)
        for coding, suffix in SIDECARS:
            if coding not in accepted:
                continue
            try:
                side = open_beneath(root_fd, parts[:-1] + [parts[-1] + suffix], policy)
            except OSError:
                continue
            side_st = _regular(side)
            if side_st is not None:
                os.close(fd)
                return _make(side, side_st, content_type, coding)
    return _make(fd, st, content_type, None)


def _make(fd: int, st: os.stat_result, content_type: str,
          encoding: str | None) -> Representation:
    etag = etag_of(st)
    mtime = int(st.st_mtime) if etag is not None else None
    last_modified = formatdate(mtime, usegmt=True) if mtime is not None else None
    return Representation(fd, st.st_size, content_type, etag, last_modified, mtime,
                          encoding, identity_of(st))


def identity_of(st: os.stat_result) -> tuple[int, int, int, int]:
    """What must stay the same for an open fd to still be the file it was: a change
    of size or mtime (written in place) or of inode means the cached headers lie."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _weak_equal(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def _http_date(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # RFC 9110 13.1.3: an invalid date is ignored


def precondition_status(rep: Representation, headers: dict[str, str]) -> int | None:
    """412, 304 or None (go on), evaluated in RFC 9110 13.2.2's order: If-Match,
    then If-Unmodified-Since only without it; If-None-Match, then
    If-Modified-Since only without it (so a tag always wins over a date)."""
    if_match = headers.get("if-match")
    if if_match is not None:
        tags = _tags(if_match)
        if "*" not in tags and (rep.etag is None or rep.etag not in tags):
            return 412  # strong comparison (RFC 9110 13.1.1)
    else:
        since = headers.get("if-unmodified-since")
        date = _http_date(since) if since else None
        if date is not None and (rep.mtime is None or rep.mtime > date):
            return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = _tags(if_none_match)
        if "*" in tags or (rep.etag is not None
                           and any(_weak_equal(rep.etag, t) for t in tags)):
            return 304
        return None
    since = headers.get("if-modified-since")
    date = _http_date(since) if since else None
    if date is not None and rep.mtime is not None and rep.mtime <= date:
        return 304
    return None


def if_range_holds(rep: Representation, value: str) -> bool:
    """RFC 9110 13.1.5: an entity tag must match strongly, a date exactly (and a
    weak tag never does); otherwise the whole representation is sent."""
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return rep.etag is not None and value == rep.etag
    date = _http_date(value)
    return date is not None and rep.mtime is not None and date == rep.mtime


def listing(dir_fd: int, url_path: str, hide_dotfiles: bool) -> bytes:
    """An HTML index of the directory *dir_fd*: every name escaped for HTML and
    percent-encoded in its link, so a file named ``<script>`` is only text."""
    names: list[str] = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if hide_dotfiles and entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            names.append(entry.name + ("/" if is_dir else ""))
    names.sort()
    title = html.escape(url_path)
    rows = "".join(f'<li><a href="{html.escape(quote(name))}">{html.escape(name)}</a></li>\n'
                   for name in names)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}"
            f"</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n{rows}</ul></body></html>\n")
    return page.encode("utf-8", "surrogateescape")
