"""The server's limits with raw sockets: connections at once, out of fds on accept,
the minimum receive rate of a head (slowloris), keep-alive and send timeouts; and
the bytes of pipelined responses in order whatever mix of sendfile and writes."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from zerocopy.http import ServeConfig, _connection

from ..support import pattern
from .rig import TIMEOUT, exchange, loop_factories, running, split_response

BIG = pattern(3_000_000, seed=5)  # (bigger than inline_body: sent with sendfile)
GET = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("limits")
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "big.bin").write_bytes(BIG)
    return root


@pytest.fixture(params=sorted(loop_factories()))
def factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    made: Callable[[], asyncio.AbstractEventLoop] = loop_factories()[request.param]
    return made


def connect(port: int, timeout: float = TIMEOUT) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.settimeout(timeout)
    return sock


_unread: dict[int, bytes] = {}  # bytes read past a response, by socket id


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole response (by its Content-Length) from a keep-alive connection;
    what follows it is kept for the next call on the same socket."""
    data = _unread.pop(id(sock), b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    status, headers, body = split_response(data)
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, "closed mid-body"
        body += chunk
    if len(body) > length:
        _unread[id(sock)] = body[length:]
    return status, headers, body[:length]


def test_at_max_connections_accepting_waits_for_one_to_close(
        tree: Path, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    with running(tree, ServeConfig(max_connections=2), factory) as srv:
        first, second = connect(srv.port), connect(srv.port)
        for sock in (first, second):
            sock.sendall(GET)
            assert read_response(sock)[0] == 200
        third = connect(srv.port, timeout=0.5)  # the kernel's backlog takes it
        third.sendall(GET)
        with pytest.raises(socket.timeout):  # ... but the server does not, at its limit
            third.recv(65536)
        assert srv.connections == 2
        first.close()
        third.settimeout(TIMEOUT)
        assert read_response(third)[0] == 200  # one closed: accepting resumed
        second.close()
        third.close()


_EMFILE_SERVER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[1])))
from zerocopy._cli import main
sys.exit(main(["serve", sys.argv[2], "--port", "0", "--access-log", "off",
               "--loop", sys.argv[3]]))
"""


def _wait_for_line(proc: subprocess.Popen[bytes], words: tuple[bytes, ...],
                   deadline: float) -> bytes:
    assert proc.stderr is not None
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], deadline - time.monotonic())
        if not ready:
            break
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        if any(word in seen for word in words):
            return seen
    raise AssertionError(f"no {words!r} on stderr; saw {seen!r}")


@pytest.mark.parametrize("loop", sorted(loop_factories()))
def test_out_of_fds_on_accept_pauses_and_never_kills_the_server(tmp_path: Path,
                                                                loop: str) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    limit = 48  # the interpreter and the loop take some; a few connections fit
    proc = subprocess.Popen([sys.executable, "-c", _EMFILE_SERVER, str(limit),
                             str(tmp_path), loop], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    clients: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("serving "), line
        port = int(line.rsplit(":", 1)[1].strip("/\n"))
        for _ in range(limit):  # more than the fds left: accept (or the dup) runs out
            sock = connect(port)
            sock.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(sock)
        _wait_for_line(proc, (b"Too many open files",), time.monotonic() + TIMEOUT)
        assert proc.poll() is None
        for sock in clients:
            sock.close()
        clients.clear()
        # fds come back as the server sees the clients leave: every request is
        # answered meanwhile (503 while it has no fd to open the file), then a 200
        deadline = time.monotonic() + TIMEOUT
        statuses: list[int] = []
        while not statuses or statuses[-1] != 200:
            assert time.monotonic() < deadline, statuses
            with connect(port) as sock:
                sock.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, body = read_response(sock)
            statuses.append(status)
            assert status in (200, 503)
        assert body == b"abc" and proc.poll() is None
    finally:
        for sock in clients:
            sock.close()
        proc.terminate()
        proc.wait(TIMEOUT)


def test_a_head_trickled_below_the_minimum_rate_is_408(
        tree: Path, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    config = ServeConfig(min_receive_rate=1000, header_timeout=30.0)
    with running(tree, config, factory) as srv, connect(srv.port) as sock:
        began = time.monotonic()
        trickle = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
        answer = b""
        for byte in trickle:  # 20 bytes a second: far below 1000
            sock.sendall(bytes([byte]))
            ready, _, _ = select.select([sock], [], [], 0.05)
            if ready:
                answer = sock.recv(65536)
                break
        assert split_response(answer)[0] == 408
        assert time.monotonic() - began < 10  # the rate, not the 30 s header timeout
        assert sock.recv(65536) == b""  # and closed


def test_a_head_above_the_minimum_rate_is_served(tree: Path) -> None:
    with running(tree, ServeConfig(min_receive_rate=50)) as srv, connect(srv.port) as sock:
        head = GET[:-2] + b"X-Pad: " + b"p" * 300 + b"\r\n\r\n"
        for i in range(0, len(head), 40):  # 40 bytes every 0.1 s: 400 bytes a second
            sock.sendall(head[i:i + 40])
            ready, _, _ = select.select([sock], [], [], 0.1)
            assert not ready or i + 40 >= len(head)
        assert read_response(sock)[::2] == (200, b"hello, world\n")


def test_an_idle_keep_alive_connection_is_closed(tree: Path) -> None:
    with running(tree, ServeConfig(keepalive_timeout=0.3)) as srv, connect(srv.port) as sock:
        sock.sendall(GET)
        assert read_response(sock)[0] == 200
        assert sock.recv(65536) == b""  # closed by the server, before our timeout


def test_a_client_that_stops_reading_is_dropped_after_send_timeout(tmp_path: Path) -> None:
    with open(tmp_path / "huge.bin", "wb") as f:
        f.truncate(64 << 20)
    with running(tmp_path, ServeConfig(send_timeout=0.5)) as srv:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.settimeout(TIMEOUT)
            sock.connect(("127.0.0.1", srv.port))
            sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            # not reading: the server's sends stall; it drops us within send_timeout
            deadline = time.monotonic() + TIMEOUT
            while srv.connections and time.monotonic() < deadline:
                select.select([], [], [], 0.05)
            assert srv.connections == 0
            total = 0
            try:
                while chunk := sock.recv(1 << 20):
                    total += len(chunk)
            except ConnectionResetError:
                pass
            assert total < 64 << 20


def test_pipelined_file_bodies_and_small_responses_keep_their_order(
        tree: Path, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    with running(tree, factory=factory) as srv:
        request = (b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" + GET
                   + b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=5-9,100-199\r\n\r\n"
                   + b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with connect(srv.port) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(request)
            assert read_response(sock)[::2] == (200, BIG)
            assert read_response(sock)[::2] == (200, b"hello, world\n")
            status, _, body = read_response(sock)
            assert status == 206 and BIG[5:10] in body and BIG[100:200] in body
            assert read_response(sock)[::2] == (200, BIG)
            assert sock.recv(65536) == b""


def test_a_file_changed_in_place_is_never_sent_with_its_old_size(tree: Path) -> None:
    path = tree / "changing.txt"  # nginx trac 1630: a cached size outliving the file
    path.write_bytes(b"short\n")
    with running(tree) as srv, connect(srv.port) as sock:
        sock.sendall(b"GET /changing.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[::2] == (200, b"short\n")
        with open(path, "r+b") as f:  # the same inode, written in place
            f.write(b"a longer body now\n")
        sock.sendall(b"GET /changing.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
        assert (status, body) == (200, b"a longer body now\n")
        assert headers["content-length"] == str(len(body))
        os.truncate(path, 2)
        sock.sendall(b"GET /changing.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[::2] == (200, b"a ")


def test_a_file_replaced_or_deleted_is_seen_at_once(tree: Path) -> None:
    path = tree / "replaced.txt"
    path.write_bytes(b"old\n")
    with running(tree) as srv, connect(srv.port) as sock:
        sock.sendall(b"GET /replaced.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[::2] == (200, b"old\n")
        (tree / "new.tmp").write_bytes(b"new\n")
        os.rename(tree / "new.tmp", path)  # the cached fd's inode loses its name
        sock.sendall(b"GET /replaced.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[::2] == (200, b"new\n")
        path.unlink()
        sock.sendall(b"GET /replaced.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 404


def test_the_cache_is_bounded(tree: Path) -> None:
    for i in range(8):
        (tree / f"many{i}.txt").write_bytes(b"%d\n" % i)
    with running(tree, ServeConfig(open_file_cache=3)) as srv:
        for i in range(8):
            raw = exchange(srv.port, b"GET /many%d.txt HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n" % i)
            assert split_response(raw)[2] == b"%d\n" % i
        assert len(srv.cache) == 3


def test_fds_of_the_cache_close_with_the_server(tree: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    with running(tree) as srv:
        raw = exchange(srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close"
                       b"\r\n\r\n")
        assert split_response(raw)[0] == 200
        assert len(srv.cache) == 1
    assert len(os.listdir("/proc/self/fd")) <= before



def test_without_a_dup_the_body_is_copied_in_order(
        tree: Path, factory: Callable[[], asyncio.AbstractEventLoop],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # out of fds at connection time: no dup, so no add_writer of our own; a body
    # that has to wait for the socket goes by pread + transport.write instead
    def no_fd(fd: int) -> int:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(_connection, "_dup", no_fd)
    huge = BIG * 8  # more than the socket buffers take at once: sendfile meets EAGAIN
    (tree / "huge.bin").write_bytes(huge)
    with running(tree, factory=factory) as srv, connect(srv.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n" + GET
                     + b"GET /huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_response(sock)[::2] == (200, huge)
        assert read_response(sock)[::2] == (200, b"hello, world\n")
        assert read_response(sock)[::2] == (200, huge)
        assert sock.recv(65536) == b""


def test_a_file_sendfile_cannot_read_is_copied(
        tree: Path, factory: Callable[[], asyncio.AbstractEventLoop],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # some FUSE and network file systems have no splice_read: sendfile says EINVAL
    # before a byte; the body (whole, and a range of it) goes by pread instead
    calls: list[int] = []

    def cannot(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(os, "sendfile", cannot)
    huge = BIG * 8
    (tree / "nosendfile.bin").write_bytes(huge)
    with running(tree, factory=factory) as srv, connect(srv.port) as sock:
        sock.sendall(b"GET /nosendfile.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /nosendfile.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100000-\r\n"
                     b"Connection: close\r\n\r\n")
        assert read_response(sock)[::2] == (200, huge)
        assert read_response(sock)[::2] == (206, huge[100000:])
        assert sock.recv(65536) == b""
    assert len(calls) == 2  # one refusal per body, then the copy


def test_an_endless_header_in_many_chunks_is_431(tree: Path) -> None:
    with running(tree) as srv, connect(srv.port) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        answer = b""
        for _ in range(100):  # 100 x 1 KiB, never a line end: the limit is 16 KiB
            try:
                sock.sendall(b"e" * 1024)
            except (BrokenPipeError, ConnectionResetError):
                break
            ready, _, _ = select.select([sock], [], [], 0.01)
            if ready:
                break
        answer = sock.recv(65536)
        assert split_response(answer)[0] == 431


def test_thousands_of_pipelined_requests_in_one_send_are_all_answered(tree: Path) -> None:
    with running(tree) as srv, connect(srv.port) as sock:
        sock.sendall(GET * 2999 + GET[:-2] + b"Connection: close\r\n\r\n")  # 111 KB
        for _ in range(3000):
            assert read_response(sock)[::2] == (200, b"hello, world\n")
        assert sock.recv(65536) == b""
