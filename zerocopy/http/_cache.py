"""The open-file cache: representations kept open between requests, revalidated.

A hit saves the path resolution (``openat2`` per component walk), the sidecar
probes (one failed ``openat2`` per coding the client accepts), the media type, the
validators and the constant header lines.  It never serves a stale size: nginx's
``open_file_cache`` trusted the size it had cached, so a file edited in place went
out truncated or padded (nginx trac 1630; h5bp/server-configs-nginx #203).  Here
every hit is checked with one ``fstat`` of the cached fd, and the entry is evicted
when the file behind it changed:

- size, mtime or inode differ from what the headers were built from (written in
  place, truncated);
- ``st_nlink`` is 0 (deleted, or replaced by a rename: the old inode lost its name);
- the entry is older than ``valid`` seconds (anything else the fd cannot see, such as
  a second hard link renamed over the name, or a symlink retargeted), so a name is
  re-resolved at least that often.

Bounded: at most ``capacity`` entries (each holds one fd), least recently used out
first.  An evicted entry's fd stays open until the responses still sending it end
(:meth:`Representation.close` counts owners).
"""

from __future__ import annotations

import os
from collections import OrderedDict

from ._files import Representation, identity_of

__all__ = ["OpenFileCache"]

CacheKey = tuple[bytes, "str | None"]


class OpenFileCache:
    """Representations by (raw request path, Accept-Encoding), checked on each use."""

    def __init__(self, capacity: int, valid: float) -> None:
        self.capacity = capacity
        self.valid = valid
        self._entries: OrderedDict[CacheKey, tuple[Representation, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: float) -> Representation | None:
        """The cached representation for *key*, held for the caller (who closes it),
        or None when there is none or it no longer describes its file."""
        found = self._entries.get(key)
        if found is None:
            return None
        rep, expires = found
        try:
            st = os.fstat(rep.fd)
            fresh = now < expires and st.st_nlink > 0 and identity_of(st) == rep.identity
        except OSError:
            fresh = False
        if not fresh:
            del self._entries[key]
            rep.close()
            return None
        self._entries.move_to_end(key)
        return rep.hold()

    def put(self, key: CacheKey, rep: Representation, now: float) -> None:
        """Keep *rep* (the cache takes an ownership of its own) for *key*."""
        if self.capacity <= 0:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            old[0].close()
        while len(self._entries) >= self.capacity:
            _, (evicted, _) = self._entries.popitem(last=False)
            evicted.close()
        self._entries[key] = (rep.hold(), now + self.valid)

    def clear(self) -> None:
        """Drop every entry (their fds close once no response holds them)."""
        while self._entries:
            _, (rep, _) = self._entries.popitem()
            rep.close()
