"""Accepting from a listening socket in an event loop's reader callback, for
``zerocopy serve`` (:class:`zerocopy.http.FileServer`) and ``zerocopy relay``.

A reader that accepts until EAGAIN costs one wake per burst of clients, where
``loop.sock_accept`` costs a future and a reader add/remove per client.  What an
``accept`` error means decides whether the server goes on:

* Out of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), accept fails again at once
  on a listener that stays readable: stop watching for a while, then try again
  (nginx's ngx_event_accept waits 500 ms), and never die of it.
* An error of the listener itself (EBADF, EINVAL, ENOTSOCK, EFAULT) is a bug: raised.
* Any other error is one client's and is skipped: ECONNABORTED (it gave up while
  queued), EPERM (a firewall rule), and the pending network errors accept(2) says to
  treat like EAGAIN on Linux (ENETDOWN, EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET,
  EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["PAUSE_ERRORS", "Acceptor"]

#: accept() errors that mean "not now" (no fd, no memory): pause, never die.
PAUSE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

#: accept() errors that mean the listening socket itself is wrong.
_LISTENER_ERRORS = frozenset({errno.EBADF, errno.EINVAL, errno.ENOTSOCK, errno.EFAULT})


class Acceptor:
    """Accepts from *sock* while *room()* says a client may come in, handing each to
    *take(client, peer)*; at most *batch* per wake, so one busy listener cannot keep
    the loop.  On a pause error it calls *warn(exc, seconds)* and stops accepting for
    *pause_for* seconds.  Call :meth:`watch` to start, and again when room was made."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 take: Callable[[socket.socket, Any], None], room: Callable[[], bool],
                 warn: Callable[[OSError, float], None], pause_for: float,
                 batch: int = 64) -> None:
        self.loop, self.sock = loop, sock
        self.take, self.room, self.warn = take, room, warn
        self.pause_for, self.batch = pause_for, batch
        self.watching = False
        self.stopped = False
        self.paused: asyncio.TimerHandle | None = None

    def watch(self) -> None:
        if not self.watching and not self.stopped and self.paused is None and self.room():
            self.watching = True
            self.loop.add_reader(self.sock.fileno(), self._ready)

    def unwatch(self) -> None:
        if self.watching:
            self.watching = False
            self.loop.remove_reader(self.sock.fileno())

    def stop(self) -> None:
        """Stop accepting for good (before the listening socket is closed)."""
        self.stopped = True
        self.unwatch()
        if self.paused is not None:
            self.paused.cancel()
            self.paused = None

    def pause(self, exc: OSError) -> None:
        """Stop accepting for ``pause_for`` seconds after *exc* (a PAUSE_ERRORS one)."""
        if self.stopped or self.paused is not None:
            return
        self.warn(exc, self.pause_for)
        self.unwatch()
        self.paused = self.loop.call_later(self.pause_for, self._unpause)

    def _unpause(self) -> None:
        self.paused = None
        self.watch()

    def _ready(self) -> None:
        for _ in range(self.batch):
            if not self.room():
                self.unwatch()  # watched again by the owner when one ends
                return
            try:
                client, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in PAUSE_ERRORS:
                    self.pause(exc)
                    return
                if exc.errno in _LISTENER_ERRORS:
                    raise
                continue  # that one client is gone; the next may be fine
            self.take(client, peer)
