"""Fixtures for the examples in the documentation pages, collected as doctests.

Every page's ``>>>`` examples run in a fresh temporary directory (the current directory
for the example), with ``tcp_pair()`` in their namespace for a connected loopback TCP
pair, so the pages can show real files and sockets without setup lines of their own.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_TIMEOUT = 5.0  # seconds; every socket an example gets is bounded


def _tcp_pair_factory(opened: list[socket.socket]) -> Callable[[], tuple[socket.socket, socket.socket]]:
    def tcp_pair() -> tuple[socket.socket, socket.socket]:
        """A connected (client, server) pair over 127.0.0.1, both with a timeout."""
        with socket.create_server(("127.0.0.1", 0)) as listener:
            client = socket.create_connection(listener.getsockname(), timeout=_TIMEOUT)
            server, _ = listener.accept()
        server.settimeout(_TIMEOUT)
        opened.extend((client, server))
        return client, server

    return tcp_pair


@pytest.fixture(autouse=True)
def _page_namespace(doctest_namespace: dict[str, object], tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ZEROCOPY_DISABLE", raising=False)
    monkeypatch.delenv("ZEROCOPY_BACKEND", raising=False)
    opened: list[socket.socket] = []
    doctest_namespace["tcp_pair"] = _tcp_pair_factory(opened)
    yield
    for sock in opened:
        sock.close()
