"""Fixtures shared by the whole suite.

Every behavioural test takes the ``backend`` fixture, so it runs once per backend;
a backend that does not load here is skipped with the reason, never dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import zerocopy
from zerocopy._backend import BACKENDS

_AVAILABLE = zerocopy.available_backends()


def _backend_param(name: str) -> object:
    return pytest.param(name, id=name, marks=pytest.mark.skipif(
        name not in _AVAILABLE, reason=f"the {name!r} backend does not load here"))


@pytest.fixture(params=[_backend_param(name) for name in BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    """The name of each backend in turn."""
    name: str = request.param
    return name


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A fresh directory on tmpfs when there is one (big and sparse files are cheap)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="zerocopy-test-", dir=base) as path:
        yield Path(path)


def pattern(size: int, seed: int = 0) -> bytes:
    """*size* bytes that differ at every offset (so a shifted copy never matches)."""
    block = hashlib.sha256(seed.to_bytes(8, "little")).digest()
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(8, "little")).digest()
        counter += 1
    return bytes(out[:size])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_file(scratch: Path) -> Callable[..., Path]:
    """Write *data* to a new file in ``scratch`` and return its path."""
    counter = iter(range(1_000_000))

    def make(data: bytes = b"", name: str | None = None) -> Path:
        path = scratch / (name or f"file{next(counter)}")
        path.write_bytes(data)
        return path

    return make


class Reader(threading.Thread):
    """Reads a socket or pipe fd to EOF in the background and keeps the bytes."""

    def __init__(self, fd: int | socket.socket) -> None:
        super().__init__(daemon=True)
        self.fd = fd.fileno() if isinstance(fd, socket.socket) else fd
        self.chunks: list[bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while data := os.read(self.fd, 1 << 20):
                self.chunks.append(data)
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self.error = exc

    def result(self, timeout: float = 60) -> bytes:
        self.join(timeout)
        assert not self.is_alive(), "reader did not reach EOF"
        if self.error is not None:
            raise self.error
        return b"".join(self.chunks)


class Writer(threading.Thread):
    """Writes *data* to a socket or pipe fd in the background, then closes it."""

    def __init__(self, end: socket.socket | int, data: bytes, close: bool = True) -> None:
        super().__init__(daemon=True)
        self.end = end
        self.data = data
        self.close = close
        self.error: BaseException | None = None

    def run(self) -> None:
        fd = self.end.fileno() if isinstance(self.end, socket.socket) else self.end
        try:
            view = memoryview(self.data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc
        finally:
            if self.close:
                if isinstance(self.end, socket.socket):
                    self.end.close()
                else:
                    os.close(self.end)

    def finish(self, timeout: float = 60) -> None:
        self.join(timeout)
        assert not self.is_alive(), "writer did not finish"
        if self.error is not None:
            raise self.error


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of TCP sockets on the loopback."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    return client, peer


def unix_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of Unix stream sockets."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


@pytest.fixture(params=["tcp", "unix"])
def stream_pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of stream sockets, TCP and Unix in turn."""
    a, b = tcp_pair() if request.param == "tcp" else unix_pair()
    with a, b:
        yield a, b


def _loop_factories() -> list[object]:
    try:
        import uvloop
    except ImportError as exc:
        reason = f"uvloop does not import here ({exc})"
        return [pytest.param(asyncio.new_event_loop, id="asyncio"),
                pytest.param(None, id="uvloop", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(asyncio.new_event_loop, id="asyncio"),
            pytest.param(uvloop.new_event_loop, id="uvloop")]


@pytest.fixture(params=_loop_factories())
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    """Each event loop in turn (for ``asyncio.Runner(loop_factory=...)``): asyncio's
    default and uvloop; uvloop is skipped with the reason when it does not import."""
    factory: Callable[[], asyncio.AbstractEventLoop] = request.param
    return factory
