"""Adversarial endpoints (issue 11): every kind of fd a caller might hand over, huge
counts and offsets, ``count=0``.  Each gives a clear error or a correct result; nothing
moves that should not, and nothing leaks (fds, blocking modes, pipes)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import zerocopy
from zerocopy import (
    BackendName, TransferError, UnsupportedTransfer, ZeroCopyError, _faults,
)
from zerocopy._faults import SYSCALLS
from zerocopy._pipes import pool

from ..support import PtyReader, Reader, Writer, open_fds, pattern, tcp_pair

Make = Callable[..., Path]
_libc = ctypes.CDLL(None, use_errno=True)
_O_NONBLOCK = os.O_NONBLOCK


@pytest.fixture(autouse=True)
def nothing_leaks() -> Iterator[None]:
    """The test's own fds are closed by it; whatever zerocopy opened must be gone too
    (idle splice pipes are the pool's, bounded: they are counted apart)."""
    before = open_fds() - 2 * pool.idle()
    yield
    assert open_fds() - 2 * pool.idle() == before


@contextlib.contextmanager
def _fd(fd: int) -> Iterator[int]:
    if fd < 0:
        pytest.skip(f"cannot make this fd here: {os.strerror(ctypes.get_errno())}")
    try:
        yield fd
    finally:
        os.close(fd)


def _timerfd() -> int:
    return int(_libc.timerfd_create(1, _O_NONBLOCK))  # CLOCK_MONOTONIC, TFD_NONBLOCK


def _signalfd() -> int:
    empty = (ctypes.c_ulong * 16)()  # no signal in the mask: nothing ever readable
    return int(_libc.signalfd(-1, empty, _O_NONBLOCK))


def _epoll() -> int:
    with select.epoll() as ep:
        return os.dup(ep.fileno())


# fd kinds that are neither files, pipes nor stream sockets: what each does as a
# destination of a regular file (nothing of them takes a byte stream).
_NOT_A_STREAM: dict[str, Callable[[], int]] = {
    "epoll": _epoll,
    "eventfd": lambda: os.eventfd(0, os.EFD_NONBLOCK),
    "timerfd": _timerfd,
    "signalfd": _signalfd,
}


@pytest.mark.parametrize("kind", sorted(_NOT_A_STREAM))
def test_anon_inode_destination_is_unsupported(backend: BackendName, make_file: Make,
                                               kind: str) -> None:
    with _fd(_NOT_A_STREAM[kind]()) as fd, open(make_file(pattern(5000)), "rb") as src:
        with pytest.raises(UnsupportedTransfer) as info:
            zerocopy.transfer(src, fd, backend=backend, timeout=5)
        assert src.tell() == 0  # nothing moved
    assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize("kind", ["timerfd", "signalfd"])
def test_anon_inode_source_with_nothing_times_out(backend: BackendName, make_file: Make,
                                                  kind: str) -> None:
    # A stream (pread refuses it: ESPIPE) with nothing to read: the wait times out.
    with _fd(_NOT_A_STREAM[kind]()) as fd, open(make_file(), "wb") as dst:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(fd, dst, backend=backend, timeout=0.2)
    assert isinstance(info.value, TimeoutError) and info.value.transferred == 0


def test_eventfd_source_is_read_as_a_stream(backend: BackendName, make_file: Make) -> None:
    # Before: lseek on an eventfd succeeds, so it was taken for seekable and read with
    # pread, which fails ESPIPE (issue 11).  It is a stream: one read gives the counter.
    dst_path = make_file()
    with _fd(os.eventfd(3, os.EFD_NONBLOCK)) as fd, open(dst_path, "wb") as dst:
        result = zerocopy.transfer(fd, dst, 8, backend=backend, timeout=5)
    assert result.transferred == 8 and dst_path.read_bytes() == (3).to_bytes(8, "little")


def test_epoll_source_is_unsupported(backend: BackendName, make_file: Make) -> None:
    with _fd(_epoll()) as fd, open(make_file(), "wb") as dst:
        with pytest.raises(UnsupportedTransfer):
            zerocopy.transfer(fd, dst, backend=backend, timeout=5)


@pytest.mark.parametrize("role", ["src", "dst"])
def test_o_path_fd_is_refused_up_front(backend: BackendName, make_file: Make,
                                       role: str) -> None:
    path = make_file(pattern(100))
    with _fd(os.open(path, os.O_PATH)) as fd, open(make_file(pattern(100)), "r+b") as other:
        src, dst = (fd, other) if role == "src" else (other, fd)
        with pytest.raises(ZeroCopyError) as info:
            zerocopy.transfer(src, dst, backend=backend)
        assert other.tell() == 0
    assert info.value.errno == errno.EBADF and "O_PATH" in str(info.value)
    assert not isinstance(info.value, TransferError)  # refused before the plan started


@pytest.mark.parametrize("role", ["src", "dst"])
def test_closed_fd_is_ebadf(backend: BackendName, make_file: Make, role: str) -> None:
    # past every open fd: closed, and not reused by the open below
    fd = max(int(name) for name in os.listdir("/proc/self/fd")) + 100
    with open(make_file(pattern(100)), "r+b") as other:
        src, dst = (fd, other) if role == "src" else (other, fd)
        with pytest.raises(ZeroCopyError) as info:
            zerocopy.transfer(src, dst, backend=backend)
    assert info.value.errno == errno.EBADF


def test_a_reused_fd_number_is_whatever_it_now_names(backend: BackendName,
                                                     make_file: Make) -> None:
    # An fd number is all a plain int says: closed and reused, it is the new file.
    old = os.open(make_file(pattern(100, seed=1)), os.O_RDONLY)
    os.close(old)
    new = os.open(make_file(pattern(300, seed=2)), os.O_RDONLY)
    dst_path = make_file()
    try:
        assert new == old
        with open(dst_path, "wb") as dst:
            zerocopy.transfer(old, dst, backend=backend)
    finally:
        os.close(new)
    assert dst_path.read_bytes() == pattern(300, seed=2)


def test_listening_socket(backend: BackendName, make_file: Make) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        with open(make_file(), "wb") as dst, pytest.raises(TransferError) as as_src:
            zerocopy.transfer(server, dst, backend=backend, timeout=5)
        with open(make_file(pattern(1000)), "rb") as src, pytest.raises(TransferError) as as_dst:
            zerocopy.transfer(src, server, backend=backend, timeout=5)
            assert src.tell() == 0
    assert as_src.value.errno in (errno.ENOTCONN, errno.EINVAL) and as_src.value.transferred == 0
    assert as_dst.value.errno in (errno.EPIPE, errno.ENOTCONN) and as_dst.value.transferred == 0


def test_udp_socket_is_refused(backend: BackendName, make_file: Make) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            open(make_file(pattern(10)), "rb") as src:
        with pytest.raises(ValueError, match="stream sockets"):
            zerocopy.transfer(src, udp, backend=backend)


def test_tty_destination(backend: BackendName, make_file: Make) -> None:
    data = pattern(200_000)
    master, slave = os.openpty()
    tty.setraw(slave)  # no newline translation: the bytes arrive as they are
    reader = PtyReader(master, len(data))
    reader.start()
    try:
        with open(make_file(data), "rb") as src:
            result = zerocopy.transfer(src, slave, backend=backend, timeout=30)
        assert result.transferred == len(data)
        assert reader.result() == data
    finally:
        os.close(slave)
        os.close(master)


def test_dev_zero_and_dev_full(backend: BackendName, make_file: Make) -> None:
    dst_path = make_file()
    with open("/dev/zero", "rb") as zero, open(dst_path, "wb") as dst:
        assert zerocopy.transfer(zero, dst, 70_000, backend=backend).transferred == 70_000
    assert dst_path.read_bytes() == bytes(70_000)
    with open(make_file(pattern(5000)), "rb") as src, open("/dev/zero", "wb") as sink:
        assert zerocopy.transfer(src, sink, backend=backend).transferred == 5000
    with open(make_file(pattern(5000)), "rb") as src, open("/dev/full", "wb") as full:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, full, backend=backend)
        assert src.tell() == 0  # nothing delivered, so the position did not move
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert info.value.transferred == 0


@pytest.mark.parametrize("role", ["src", "dst"])
def test_non_blocking_socket_without_timeout_waits(backend: BackendName, make_file: Make,
                                                   role: str) -> None:
    # setblocking(False): timeout 0.0, "never wait" for the stdlib.  zerocopy waits
    # (poll), moves it all, and leaves the socket non-blocking as it found it.
    data = pattern(4 << 20)
    a, b = tcp_pair()
    a.setblocking(False)
    with a:
        if role == "dst":
            reader = Reader(b)
            reader.start()
            with open(make_file(data), "rb") as src:
                result = zerocopy.transfer(src, a, backend=backend)
            a.shutdown(socket.SHUT_WR)
            assert reader.result() == data
            b.close()
        else:
            writer = Writer(b, data)
            threading.Timer(0.1, writer.start).start()  # nothing there at first
            dst_path = make_file()
            with open(dst_path, "wb") as dst:
                result = zerocopy.transfer(a, dst, backend=backend)
            writer.finish()
            assert dst_path.read_bytes() == data
        assert result.transferred == len(data)
        assert a.gettimeout() == 0.0 and not os.get_blocking(a.fileno())


# -- numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["count", "offset", "dst_offset"])
def test_numbers_past_2_63_are_refused(backend: BackendName, make_file: Make,
                                       name: str) -> None:
    # Before: OverflowError from the core's conversion (or, for the os backend, a
    # count accepted); a file offset is a signed 64-bit number.
    with open(make_file(pattern(10)), "rb") as src, open(make_file(), "wb") as dst:
        numbers: dict[str, int | None] = {"count": None, "offset": None, "dst_offset": None}
        numbers[name] = 1 << 63
        with pytest.raises(ValueError, match="2\\*\\*63"):
            zerocopy.transfer(src, dst, numbers["count"], offset=numbers["offset"],
                              dst_offset=numbers["dst_offset"], backend=backend)
        with pytest.raises(ValueError, match="2\\*\\*63"):  # the default route too
            zerocopy.transfer(src, dst, numbers["count"], offset=numbers["offset"],
                              dst_offset=numbers["dst_offset"])
        assert src.tell() == 0


@pytest.mark.parametrize("offset", [1 << 40, (1 << 62), (1 << 63) - 1, (1 << 63) - 2])
def test_offsets_past_the_end_move_nothing(backend: BackendName, make_file: Make,
                                           offset: int) -> None:
    # Before: 2**63 - 1 and 2**63 - 2 raised UnsupportedTransfer (EINVAL: the kernel
    # refuses pos + count past 2**63 - 1); the count asked is now bounded by it.
    dst_path = make_file()
    for count in (None, 10, (1 << 63) - 1):
        with open(make_file(pattern(100)), "rb") as src, open(dst_path, "wb") as dst:
            result = zerocopy.transfer(src, dst, count, offset=offset, backend=backend)
            assert src.tell() == 0 and dst.tell() == 0
        assert result.transferred == 0 and result.eof
    assert dst_path.read_bytes() == b""


def test_a_huge_count_moves_the_whole_file(backend: BackendName, make_file: Make) -> None:
    data = pattern(100_000)
    dst_path = make_file()
    with open(make_file(data), "rb") as src, open(dst_path, "wb") as dst:
        result = zerocopy.transfer(src, dst, (1 << 63) - 1, offset=5, backend=backend)
    assert result.transferred == len(data) - 5 and result.eof
    assert dst_path.read_bytes() == data[5:]


def test_count_zero_makes_no_system_call(backend: BackendName, make_file: Make,
                                         zerocopy_faults: object) -> None:
    # Every call armed to fail: count=0 must not make one, and moves nothing.
    for syscall in SYSCALLS:
        _faults.inject(syscall, errno.EIO)
    a, b = tcp_pair()
    with a, b, open(make_file(pattern(100)), "rb") as src:
        for dst in (a, b):
            result = zerocopy.transfer(src, dst, 0, backend=backend)
            assert result.transferred == 0 and not result.eof and result.fallbacks == ()
        assert src.tell() == 0
        for end in (a, b):
            end.settimeout(0.05)
            with pytest.raises(TimeoutError):
                end.recv(1)  # nothing was sent either way
    assert all(_faults.pending(syscall) == 1 for syscall in SYSCALLS)


def test_closed_while_waiting_is_not_leaked(backend: BackendName, make_file: Make) -> None:
    # A peer that goes away while the transfer waits: the error is clear and every
    # fd zerocopy took (its pipe, its wake-up pair) is returned.
    a, b = tcp_pair()
    threading.Timer(0.1, b.close).start()
    with a, open(make_file(), "wb") as dst:
        started = time.monotonic()
        result = zerocopy.transfer(a, dst, backend=backend, timeout=10)
    assert result.transferred == 0 and result.eof and time.monotonic() - started < 5
