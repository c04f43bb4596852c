"""A FileServer on its own thread and event loop, and the clients the tests use:
curl (a real, independent HTTP client) and raw sockets (bytes exactly as sent)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from zerocopy.http import FileServer, ServeConfig

CURL = shutil.which("curl")
TIMEOUT = 10.0


def loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loops the server is tested on (uvloop when installed)."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:
        pass
    else:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


@contextmanager
def running(root: Path, config: ServeConfig | None = None,
            factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
            ) -> Iterator[FileServer]:
    """A started FileServer serving *root*, stopped (and its thread joined) after;
    anything the loop's exception handler gets fails the test."""
    loop = factory()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    server = FileServer(root, port=0, config=config)
    started = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_until_complete(server.serve_forever())
        loop.run_until_complete(server.wait_closed(grace=2.0))

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert started.wait(TIMEOUT)
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(server.close)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        loop.close()
    assert not errors, errors


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run curl with a timeout; stdout is the body (or what -i/-D adds)."""
    assert CURL is not None
    return subprocess.run([CURL, "-sS", "--max-time", str(TIMEOUT), *args],
                          capture_output=True, timeout=TIMEOUT + 5)


def exchange(port: int, request: bytes, until_close: bool = True) -> bytes:
    """Send *request* raw and read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            if not until_close:
                break
        return b"".join(chunks)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names) and the rest, of one response."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest
