"""``arelay`` without the compiled core (not Linux): the event loop drives the Python
state machines of ``zerocopy._relay.portable``, no thread at all.

Each socket gets at most one reader and one writer callback (``loop.add_reader`` /
``add_writer``); the callbacks run the same :class:`~zerocopy._relay.portable.Direction`
state machines as the blocking loop, with non-blocking splice or recv/send.
"""

from __future__ import annotations

import asyncio
import socket

from .portable import Pump, _SideFailed
from .common import RelayResult

__all__ = ["arelay"]


async def arelay(a: socket.socket, b: socket.socket, *, idle_timeout: float | None = None,
                 method: str = "auto") -> RelayResult:
    """:func:`zerocopy.arelay` on Python state machines (the checks are made already)."""
    loop = asyncio.get_running_loop()
    pump = Pump(a, b, method)
    wake = asyncio.Event()
    state: dict[str, object] = {"failed": None, "progress": True}
    registered: dict[tuple[int, str], bool] = {}

    def on_event(kind: str, fd: int) -> None:
        try:
            for direction in (pump.ab, pump.ba):
                if kind == "r" and direction.src.fileno() == fd and direction.wants_read():
                    state["progress"] = direction.on_readable() or state["progress"]
                if kind == "w" and direction.dst.fileno() == fd and direction.wants_write():
                    state["progress"] = direction.on_writable() or state["progress"]
        except _SideFailed as failed:
            state["failed"] = failed
        update()
        wake.set()

    def update() -> None:
        want: dict[tuple[int, str], bool] = {}
        if state["failed"] is None:
            for direction in (pump.ab, pump.ba):
                if direction.wants_read():
                    want[(direction.src.fileno(), "r")] = True
                if direction.wants_write():
                    want[(direction.dst.fileno(), "w")] = True
        for key in list(registered):
            if key not in want:
                _remove(key)
        for key in want:
            if key not in registered:
                fd, kind = key
                if kind == "r":
                    loop.add_reader(fd, on_event, "r", fd)
                else:
                    loop.add_writer(fd, on_event, "w", fd)
                registered[key] = True

    def _remove(key: tuple[int, str]) -> None:
        fd, kind = key
        if kind == "r":
            loop.remove_reader(fd)
        else:
            loop.remove_writer(fd)
        del registered[key]

    fds = (a.fileno(), b.fileno())
    try:
        update()
        while not pump.finished() and state["failed"] is None:
            wake.clear()
            state["progress"] = False
            try:
                await asyncio.wait_for(wake.wait(), idle_timeout)
            except TimeoutError:
                return _idle(pump, registered, _remove)
            if idle_timeout is not None and not state["progress"]:
                continue
    except BaseException as exc:
        for key in list(registered):
            _remove(key)
        pump.interrupted(exc)
        raise
    for key in list(registered):
        _remove(key)
    failed = state["failed"]
    if isinstance(failed, _SideFailed):
        raise pump.failure(failed) from failed.exc
    del fds
    return pump.result("eof")


def _idle(pump: Pump, registered: dict[tuple[int, str], bool], remove: object) -> RelayResult:
    for key in list(registered):
        remove(key)  # type: ignore[operator]
    return pump.result("idle")
