"""Fixtures shared by the whole suite; the rigs they use live in ``support.py``.

Where a new test goes: ``contract/`` if it states behaviour every backend must keep
(it takes the ``backend`` fixture, so it runs once per backend; a backend that does
not load here is skipped with the reason, never dropped); ``native/`` if only the
compiled core can show it (the fast path, the GIL, signals); ``aio/`` for asyncio;
``tooling/`` for probing, the pytest plugin and the benchmark; ``cli/`` for the
``zerocopy`` commands.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import zerocopy
from zerocopy._backends import BACKENDS, BackendName

from .support import Echo, tcp_pair, unix_pair

def pytest_configure(config: pytest.Config) -> None:
    """``python -m pytest`` from the repository root puts the source tree first on
    sys.path, so ``import zerocopy`` finds the uncompiled package: half the suite would
    skip and the rest test the wrong thing.  Stop at once instead, saying what to run."""
    if sys.platform.startswith("linux") and importlib.util.find_spec("zerocopy._core") is None:
        pytest.exit(f"zerocopy was imported from {os.path.dirname(zerocopy.__file__)} without "
                    "its compiled core (python -m pytest from the repository root does "
                    "that); install and run the tests with: pip install '.[test]' && pytest",
                    returncode=4)


_AVAILABLE = zerocopy.available_backends()


def _backend_param(name: str) -> object:
    return pytest.param(name, id=name, marks=pytest.mark.skipif(
        name not in _AVAILABLE, reason=f"the {name!r} backend does not load here"))


@pytest.fixture(params=[_backend_param(name) for name in BACKENDS])
def backend(request: pytest.FixtureRequest) -> BackendName:
    """The name of each backend in turn."""
    name: BackendName = request.param
    return name


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A fresh directory on tmpfs when there is one (big and sparse files are cheap)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="zerocopy-test-", dir=base) as path:
        yield Path(path)


@pytest.fixture
def make_file(scratch: Path) -> Callable[..., Path]:
    """Write *data* to a new file in ``scratch`` and return its path."""
    counter = iter(range(1_000_000))

    def make(data: bytes = b"", name: str | None = None) -> Path:
        path = scratch / (name or f"file{next(counter)}")
        path.write_bytes(data)
        return path

    return make


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


@pytest.fixture
def echo() -> Iterator[Echo]:
    """An echo server on loopback (``support.Echo``), for the relay's tests."""
    server = Echo()
    yield server
    server.close()
