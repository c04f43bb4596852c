"""No fd leaks: the open-fd count is the same before and after 10,000 mixed transfers
(every shape, every backend, failing ones included, splice pipes included)."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, OwnedFd, TransferError, UnsupportedTransfer
from zerocopy._faults import Syscall, clear, inject
from zerocopy._pipes import pool

from ..support import pattern

ROUNDS = 10_000
SIZE = 3000  # small: the count of transfers matters here, not their size


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _drain(sock: socket.socket) -> bytes:
    """Everything queued on a non-blocking socket."""
    chunks = []
    while True:
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


class _Rig:
    """Long-lived endpoints reused by every round, so any fd that changes hands per
    round is one zerocopy made (a pipe, a socket probe, a dup)."""

    def __init__(self, stack: ExitStack, scratch: Path) -> None:
        self.data = pattern(SIZE)
        src_path = scratch / "src"
        src_path.write_bytes(self.data)
        self.src_file = stack.enter_context(open(src_path, "rb"))
        self.dst_file = stack.enter_context(open(scratch / "dst", "wb"))
        self.ro_file = stack.enter_context(open(src_path, "rb"))
        # sockets: a dst with a draining peer, a src we feed ourselves
        self.out, self.out_peer = self._pair(stack)
        self.src_sock, self.src_feed = self._pair(stack)
        # a dst whose peer is gone: every write fails EPIPE
        self.dead, dead_peer = self._pair(stack)
        dead_peer.close()
        self.pipe_r, self.pipe_w = os.pipe()
        stack.callback(os.close, self.pipe_r)
        stack.callback(os.close, self.pipe_w)
        os.set_blocking(self.pipe_r, False)

    @staticmethod
    def _pair(stack: ExitStack) -> tuple[socket.socket, socket.socket]:
        a, b = socket.socketpair()
        stack.enter_context(a)
        stack.enter_context(b)
        b.setblocking(False)
        return a, b

    def _feed(self) -> None:
        self.src_feed.sendall(self.data)

    # Each shape runs one transfer with *backend* and checks what it must.

    def file_to_file(self, backend: BackendName) -> None:
        r = zerocopy.transfer(self.src_file, self.dst_file, offset=0, dst_offset=0,
                              backend=backend)
        assert r.transferred == SIZE

    def file_to_socket(self, backend: BackendName) -> None:
        zerocopy.transfer(self.src_file.fileno(), self.out.fileno(), SIZE, offset=0,
                          backend=backend)
        assert _drain(self.out_peer) == self.data

    def socket_to_socket(self, backend: BackendName) -> None:
        self._feed()
        zerocopy.transfer(self.src_sock, self.out, SIZE, backend=backend)
        assert _drain(self.out_peer) == self.data

    def socket_to_file(self, backend: BackendName) -> None:
        self._feed()
        r = zerocopy.transfer(self.src_sock.fileno(), self.dst_file, SIZE, dst_offset=0,
                              backend=backend)
        assert r.transferred == SIZE

    def file_to_pipe_to_file(self, backend: BackendName) -> None:
        zerocopy.transfer(self.src_file, self.pipe_w, SIZE, offset=0, backend=backend)
        zerocopy.transfer(self.pipe_r, self.dst_file, SIZE, dst_offset=0, backend=backend)

    def owned_dup(self, backend: BackendName) -> None:
        with OwnedFd.dup(self.out) as dup:
            zerocopy.transfer(self.src_file, dup, SIZE, offset=0, backend=backend)
        assert _drain(self.out_peer) == self.data

    def broken_pipe(self, backend: BackendName) -> None:
        with pytest.raises(BrokenPipeError):
            zerocopy.transfer(self.src_file, self.dead, SIZE, offset=0, backend=backend)

    def residue_in_our_pipe(self, backend: BackendName) -> None:
        """The drain out of our splice pipe fails: the pipe holds bytes, so it is
        closed rather than pooled (read/write backends fail their write instead)."""
        self._feed()
        inject("splice" if backend != "portable" else "write", errno.ECONNRESET,
               skip=1 if backend != "portable" else 0)
        try:
            with pytest.raises(TransferError) as info:
                zerocopy.transfer(self.src_sock, self.out, SIZE, backend=backend)
        finally:
            clear()
        rest = _drain_blocking(self.src_sock, SIZE - len(info.value.residue))
        assert info.value.residue + rest == self.data

    def refused(self, backend: BackendName) -> None:
        with pytest.raises(zerocopy.ZeroCopyError):  # dst not open for writing
            zerocopy.transfer(self.src_file, self.ro_file, backend=backend)

    def unsupported(self, backend: BackendName) -> None:
        names: tuple[Syscall, ...] = ("copy_file_range", "sendfile", "read")
        for name in names:
            inject(name, errno.EINVAL)
        try:
            with pytest.raises(UnsupportedTransfer):
                zerocopy.transfer(self.src_file, self.dst_file, offset=0, dst_offset=0,
                                  backend=backend)
        finally:
            clear()

    def shapes(self) -> list[Callable[[BackendName], None]]:
        return [self.file_to_file, self.file_to_socket, self.socket_to_socket,
                self.socket_to_file, self.file_to_pipe_to_file, self.owned_dup,
                self.broken_pipe, self.residue_in_our_pipe, self.refused, self.unsupported]


def _drain_blocking(sock: socket.socket, size: int) -> bytes:
    out = b""
    while len(out) < size:
        out += sock.recv(size - len(out))
    return out


@pytest.fixture
def no_idle_pipes() -> Iterator[None]:
    pool.clear()
    yield
    pool.clear()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_no_fd_leaks_over_10000_mixed_transfers(scratch: Path, no_idle_pipes: None) -> None:
    backends = zerocopy.available_backends()
    with ExitStack() as stack:
        rig = _Rig(stack, scratch)
        shapes = rig.shapes()
        rig.file_to_file(backends[0])  # warm up: first imports, first lazy objects
        pool.clear()
        before = _open_fds()
        ran = 0
        for i in range(ROUNDS):
            # every shape with every backend, in turn
            shapes[i % len(shapes)](backends[i // len(shapes) % len(backends)])
            ran += 1
        # The pool may keep its bounded idle pipes (two fds each): account for them,
        # then close them and count again.
        idle = pool.idle()
        assert idle <= pool.limit
        assert _open_fds() == before + 2 * idle
        pool.clear()
        assert _open_fds() == before
    assert ran == ROUNDS


def test_pipe_with_residue_is_never_pooled(no_idle_pipes: None) -> None:
    """The socket->socket splice path: a clean run returns its pipe to the pool, a run
    that leaves bytes in it closes it."""
    if "native" not in zerocopy.available_backends() and not hasattr(os, "splice"):
        pytest.skip("no splice here")
    backend: BackendName = "native" if "native" in zerocopy.available_backends() else "os"
    data = pattern(1000)
    with ExitStack() as stack:
        src, feed = _Rig._pair(stack)
        dst, peer = _Rig._pair(stack)
        feed.sendall(data)
        zerocopy.transfer(src, dst, len(data), backend=backend)
        assert pool.idle() == 1
        before = _open_fds()
        feed.sendall(data)
        inject("splice", errno.EPIPE, skip=1)
        try:
            with pytest.raises(TransferError) as info:
                zerocopy.transfer(src, dst, len(data), backend=backend)
        finally:
            clear()
        assert info.value.residue == data
        # The pooled pipe was leased and, holding bytes, closed: two fds fewer.
        assert pool.idle() == 0 and _open_fds() == before - 2
