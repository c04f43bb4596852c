"""``zerocopy._accept.Acceptor``, what ``serve`` and ``relay`` accept with: a client's
own error is skipped, out-of-fds pauses and resumes, a broken listener raises, and
the connection limit stops the watch."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import Any

import pytest

from zerocopy._accept import Acceptor


class Listener:
    """A real listening socket whose accept() first fails with *errors*, in order."""

    def __init__(self, errors: list[int]) -> None:
        self.real = socket.create_server(("127.0.0.1", 0))
        self.real.setblocking(False)
        self.errors = list(errors)

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> tuple[socket.socket, Any]:
        if self.errors:
            code = self.errors.pop(0)
            raise OSError(code, os.strerror(code))
        return self.real.accept()

    def connect(self) -> socket.socket:
        return socket.create_connection(self.real.getsockname())


async def accept_with(listener: Listener, clients: int, room: int = 100,
                      pause_for: float = 0.05) -> tuple[list[socket.socket], list[str]]:
    """Connect *clients* to *listener*, run an acceptor until it has them (or 2 s)."""
    loop = asyncio.get_running_loop()
    taken: list[socket.socket] = []
    warned: list[str] = []
    acceptor = Acceptor(loop, listener, lambda c, _peer: taken.append(c),  # type: ignore[arg-type]
                        lambda: len(taken) < room,
                        lambda exc, seconds: warned.append(f"{exc.errno} {seconds}"),
                        pause_for)
    peers = [listener.connect() for _ in range(clients)]
    acceptor.watch()
    for _ in range(200):
        if len(taken) >= min(clients, room):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # nothing more comes in past the limit
    acceptor.stop()
    for s in peers:
        s.close()
    listener.real.close()
    return taken, warned


@pytest.mark.parametrize("code", [errno.ECONNABORTED, errno.EPROTO, errno.EPERM,
                                  errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EOPNOTSUPP])
def test_one_clients_error_is_skipped(code: int) -> None:
    """accept(2): on Linux these are a pending network error of one connection, to be
    treated like EAGAIN; the relay used to re-raise all but ECONNABORTED."""
    taken, warned = asyncio.run(accept_with(Listener([code, code]), clients=2))
    assert len(taken) == 2 and warned == []
    for c in taken:
        c.close()


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
def test_out_of_fds_pauses_once_then_accepts(code: int) -> None:
    taken, warned = asyncio.run(accept_with(Listener([code]), clients=3, pause_for=0.05))
    assert len(taken) == 3 and warned == [f"{code} 0.05"]
    for c in taken:
        c.close()


def test_a_broken_listener_raises() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx["exception"]))
        listener = Listener([errno.EINVAL])
        acceptor = Acceptor(loop, listener, lambda c, _p: None,  # type: ignore[arg-type]
                            lambda: True, lambda exc, s: None, 0.05)
        client = listener.connect()
        acceptor.watch()
        await asyncio.sleep(0.1)
        acceptor.stop()
        client.close()
        listener.real.close()
        assert errors and isinstance(errors[0], OSError) and errors[0].errno == errno.EINVAL

    asyncio.run(main())


def test_at_the_limit_it_stops_watching() -> None:
    taken, warned = asyncio.run(accept_with(Listener([]), clients=5, room=2))
    assert len(taken) == 2 and warned == []
    for c in taken:
        c.close()
