"""Fallbacks and failures on real conditions (docs/transfer.md, "Errors and fallback").

Before the first byte, "this method can't do this pair" falls back and is recorded;
"this endpoint is broken or full" is raised at once.  After progress every error is
a ``TransferError`` that is also the builtin exception, and ``.transferred`` and
``.residue`` account for every byte.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Method, TransferError, ZeroCopyError

from ..support import (
    PROC_SOURCE,
    Reader,
    Rig,
    Writer,
    data,
    proc_bytes,
    tcp_pair,
    unix_pair,
)

KERNEL_FILE_METHODS = {Method.COPY_FILE_RANGE, Method.SENDFILE, Method.SPLICE}


def _fallen(result: zerocopy.TransferResult | TransferError) -> list[tuple[Method, int]]:
    return [(f.method, f.errno) for f in result.fallbacks]


# -- O_APPEND, same file, /proc, other filesystems ------------------------------------


@pytest.mark.parametrize("src_kind", ["file", "unix", "pipe"])
def test_append_destination(backend: BackendName, scratch: Path, src_kind: str) -> None:
    content = data(70000)
    with Rig(scratch, src_kind, "file", content) as rig:
        assert rig.dst_path is not None
        with open(rig.dst_path, "ab") as dst:
            the_plan = zerocopy.plan(rig.src, dst, backend=backend)
            assert the_plan.methods == (Method.READ_WRITE,)
            skipped = {s.method for s in the_plan.skipped if "O_APPEND" in s.reason}
            assert skipped == {m for m in zerocopy.plan(rig.src, rig.dst, backend=backend)
                               .methods if m is not Method.READ_WRITE}
            result = zerocopy.transfer(rig.src, dst, backend=backend)
            assert dst.tell() == 5 + len(content)
        assert result.method is Method.READ_WRITE and result.fallbacks == ()
        assert result.transferred == len(content) and result.eof
        assert rig.received() == b"#####" + content  # appended after what was there
        if src_kind == "file":
            assert rig.src_position() == len(content)


def test_same_file_appended_to_itself(backend: BackendName, make_file: Callable[..., Path]) -> None:
    content = data(65537)
    path = make_file(content)
    with open(path, "rb") as src, open(path, "r+b") as dst:
        dst.seek(0, os.SEEK_END)
        # count=None is bounded by the size at the start: it must not chase its tail.
        result = zerocopy.transfer(src, dst, backend=backend)
        assert src.tell() == len(content) and dst.tell() == 2 * len(content)
    assert result.transferred == len(content) and result.eof
    assert path.read_bytes() == content * 2
    expected = Method.READ_WRITE if backend == "portable" else Method.COPY_FILE_RANGE
    assert result.method is expected and result.fallbacks == ()


def test_same_file_from_its_end(backend: BackendName, make_file: Callable[..., Path]) -> None:
    """Copying a file into itself from its end: nothing to move, and that is its EOF."""
    path = make_file(data(4096))
    with open(path, "rb") as src, open(path, "ab") as dst:
        src.seek(4096)
        result = zerocopy.transfer(src, dst, backend=backend)
        assert src.tell() == 4096
    assert result.transferred == 0 and result.eof
    assert path.read_bytes() == data(4096)


def test_same_file_overlapping(backend: BackendName, make_file: Callable[..., Path]) -> None:
    content = data(5000)
    path = make_file(content)
    with open(path, "r+b") as src, open(path, "r+b") as dst:
        result = zerocopy.transfer(src, dst, 1000, offset=0, dst_offset=10, backend=backend)
        assert src.tell() == 0 and dst.tell() == 0
    assert result.transferred == 1000
    # copy_file_range refuses overlapping ranges of one file (EINVAL); sendfile has no
    # destination offset; read/write reads the whole range before writing it.
    if backend != "portable":
        assert _fallen(result) == [(Method.COPY_FILE_RANGE, errno.EINVAL)]
    assert result.method is Method.READ_WRITE
    assert path.read_bytes() == content[:10] + content[:1000] + content[1010:]


@pytest.mark.parametrize("dst_kind", ["file", "pipe", "tcp"])
def test_proc_source(backend: BackendName, scratch: Path, dst_kind: str) -> None:
    expected = proc_bytes()
    if len(expected) <= 5:
        pytest.skip(f"{PROC_SOURCE} is (nearly) empty: run with an environment")
    with Rig(scratch, "proc", dst_kind, b"", expect_out=len(expected)) as rig:
        assert os.fstat(rig.src_fd).st_size == 0
        result = zerocopy.transfer(rig.src, rig.dst, backend=backend)
        got = rig.received()
    assert result.transferred == len(expected) and result.eof
    assert got == expected  # (longer than, so over, the file's 5-byte prefill)
    assert result.method is Method.READ_WRITE
    if backend != "portable":
        # Every kernel method declines a procfs file that has no splice support,
        # before a byte moved; each refusal is recorded.
        fell = [m for m, _ in _fallen(result)]
        assert fell and set(fell) <= KERNEL_FILE_METHODS
        if dst_kind == "file":
            assert fell[0] is Method.COPY_FILE_RANGE


def test_proc_seq_file(backend: BackendName, make_file: Callable[..., Path]) -> None:
    """/proc/version is a seq_file: copy_file_range declines it, sendfile works."""
    with open("/proc/version", "rb") as f:
        expected = f.read()
    dst = make_file()
    with open("/proc/version", "rb") as src, open(dst, "wb") as fout:
        result = zerocopy.transfer(src, fout, backend=backend)
        assert src.tell() == len(expected)
    assert dst.read_bytes() == expected
    assert result.transferred == len(expected) and result.eof
    if backend != "portable":
        fell = _fallen(result)
        assert fell and fell[0][0] is Method.COPY_FILE_RANGE
        # EXDEV (Linux >= 5.19) or a 0 return at the start (errno 0, older kernels)
        assert fell[0][1] in (errno.EXDEV, 0, errno.EINVAL)
        assert result.method in (Method.SENDFILE, Method.READ_WRITE)


def test_across_filesystems(backend: BackendName, scratch: Path, tmp_path: Path) -> None:
    if os.stat(scratch).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("scratch and tmp_path are on one filesystem here")
    content = data(65537)
    src_path = scratch / "src"
    src_path.write_bytes(content)
    dst_path = tmp_path / "dst"
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        result = zerocopy.transfer(src, dst, backend=backend)
    assert dst_path.read_bytes() == content
    if backend != "portable" and result.fallbacks:
        # Linux >= 5.19 refuses copy_file_range across filesystem types (EXDEV).
        assert _fallen(result) == [(Method.COPY_FILE_RANGE, errno.EXDEV)]
        assert result.method is Method.SENDFILE


def test_kill_switch(backend: BackendName, make_file: Callable[..., Path],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    content = data(4096)
    src_path, dst_path = make_file(content), make_file()
    monkeypatch.setenv("ZEROCOPY_DISABLE", "copy_file_range")
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        assert zerocopy.transfer(src, dst, backend=backend).method is (
            Method.READ_WRITE if backend == "portable" else Method.SENDFILE)
        monkeypatch.setenv("ZEROCOPY_DISABLE", "sendfile, copy_file_range")
        src.seek(0)
        dst.seek(0)
        the_plan = zerocopy.plan(src, dst, backend=backend)
        assert the_plan.methods == (Method.READ_WRITE,)
        result = zerocopy.transfer(src, dst, backend=backend)
        assert result.method is Method.READ_WRITE and result.fallbacks == ()
    assert dst_path.read_bytes() == content


# -- broken or full endpoints: raised at once, never retried -----------------------------


def test_full_device(backend: BackendName, make_file: Callable[..., Path]) -> None:
    with open(make_file(data(10000)), "rb") as src, open("/dev/full", "wb") as dst:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, dst, backend=backend)
        assert src.tell() == 0
    err = info.value
    assert err.errno == errno.ENOSPC and err.transferred == 0 and err.residue == b""
    assert err.method is Method.READ_WRITE  # ENOSPC is never a reason to fall back
    if backend != "portable":
        assert _fallen(err) == [(Method.SENDFILE, errno.EINVAL)]  # no splice_write


@pytest.mark.parametrize("pair", [tcp_pair, unix_pair], ids=["tcp", "unix"])
def test_dead_peer_before_first_byte(backend: BackendName, make_file: Callable[..., Path],
                                     pair: Callable[[], tuple[socket.socket, socket.socket]]
                                     ) -> None:
    sock, peer = pair()
    peer.close()
    with sock, open(make_file(data(100000)), "rb") as src:
        if sock.family == socket.AF_INET:
            sock.settimeout(5)  # the FIN is in; the first write draws the RST
            sock.send(b"x")
            sock.settimeout(None)
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, sock, backend=backend)
        assert src.tell() == 0
    err = info.value
    assert isinstance(err, ConnectionError) and isinstance(err, ZeroCopyError)
    assert err.transferred == 0 and err.fallbacks == ()  # a dead peer is not retried


# -- the peer goes away mid-transfer ----------------------------------------------------


def _small_buffers(sock: socket.socket, peer: socket.socket) -> int:
    """Pin the socket buffers (no autotuning) and return how much they can hold."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            + peer.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def _read_then_close(peer: socket.socket, want: int, out: list[bytes]) -> None:
    got = 0
    while got < want:
        chunk = peer.recv(min(65536, want - got))
        if not chunk:
            break
        out.append(chunk)
        got += len(chunk)
    peer.close()  # with bytes unread: TCP answers the next segment with RST


@pytest.mark.parametrize("pair", [tcp_pair, unix_pair], ids=["tcp", "unix"])
def test_peer_closes_mid_transfer_file_source(
        backend: BackendName, make_file: Callable[..., Path],
        pair: Callable[[], tuple[socket.socket, socket.socket]]) -> None:
    content = data(16 << 20)
    sock, peer = pair()
    buffered = _small_buffers(sock, peer)
    received: list[bytes] = []
    closer = threading.Thread(target=_read_then_close, args=(peer, 300_000, received))
    with sock, open(make_file(content), "rb") as src:
        src.seek(11)
        closer.start()
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, sock, backend=backend)
        closer.join(10)
        err = info.value
        assert src.tell() == 11 + err.transferred  # advanced by exactly what was delivered
    assert isinstance(err, ConnectionError)
    assert err.errno in (errno.EPIPE, errno.ECONNRESET)
    got = b"".join(received)
    assert got == content[11:11 + len(got)]
    # Delivered means "accepted by the kernel": what the peer read, plus at most what
    # the two socket buffers held when it went away (lost with the connection).
    assert len(got) <= err.transferred <= len(got) + 2 * buffered
    assert err.residue == b""  # a seekable source is rewound instead


@pytest.mark.parametrize("src_kind", ["tcp", "unix", "pipe"])
def test_destination_dies_residue_accounts_for_every_byte(backend: BackendName, scratch: Path,
                                                         src_kind: str) -> None:
    """A stream source, a Unix-socket destination whose peer stops reading mid-way:
    residue + what the peer received + what the source still holds == the stream."""
    content = data(8 << 20)
    with Rig(scratch, src_kind, "null", content) as rig:
        sock, peer = unix_pair()
        with sock, peer:
            received: list[bytes] = []

            def stop_reading() -> None:
                got = 0
                while got < 500_000:
                    chunk = peer.recv(65536)
                    received.append(chunk)
                    got += len(chunk)
                # SHUT_RD on a Unix socket: the writer gets EPIPE, and what was
                # already queued stays readable, so nothing delivered is lost.
                peer.shutdown(socket.SHUT_RD)
                while chunk := peer.recv(1 << 20):
                    received.append(chunk)

            stopper = threading.Thread(target=stop_reading)
            stopper.start()
            with pytest.raises(TransferError) as info:
                zerocopy.transfer(rig.src, sock, backend=backend)
            stopper.join(10)
            assert not stopper.is_alive()
        err = info.value
        assert isinstance(err, BrokenPipeError)
        got = b"".join(received)
        assert len(got) == err.transferred
        rest = rig.src_rest()
        assert len(got) + len(err.residue) + len(rest) == len(content)
        assert got + err.residue + rest == content


def test_peer_resets_socket_to_socket(backend: BackendName) -> None:
    """TCP reset mid-way through a socket -> socket splice: ConnectionError, and the
    bytes that were stuck in our pipe come back as residue, in order."""
    content = data(8 << 20)
    feed, src = unix_pair()
    sock, peer = tcp_pair()
    with feed, src, sock, peer:
        buffered = _small_buffers(sock, peer)
        writer = Writer(feed, content)
        received: list[bytes] = []
        closer = threading.Thread(target=_read_then_close, args=(peer, 300_000, received))
        writer.start()
        closer.start()
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, sock, backend=backend)
        closer.join(10)
        err = info.value
        assert isinstance(err, ConnectionError)
        got = b"".join(received)
        reader = Reader(src)
        reader.start()
        rest = reader.result()
        writer.finish()
    # Bytes the kernel accepted for the dead connection are gone; everything else is
    # either received, handed back, or still in the source, in stream order.
    assert len(got) <= err.transferred <= len(got) + 2 * buffered
    assert content[:len(got)] == got
    sent = err.transferred
    assert err.residue + rest == content[sent:]


def test_unsupported_transfer(backend: BackendName, make_file: Callable[..., Path],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """When every method of the plan declines, UnsupportedTransfer says why each did."""
    monkeypatch.setenv("ZEROCOPY_DISABLE", "read_write")
    dst_path = make_file(b"untouched")
    with open(PROC_SOURCE, "rb") as src, open(dst_path, "r+b") as dst:
        with pytest.raises(zerocopy.UnsupportedTransfer, match="no method of the") as info:
            zerocopy.transfer(src, dst, backend=backend)
        assert src.tell() == 0 and dst.tell() == 0
    assert dst_path.read_bytes() == b"untouched"
    err = info.value
    assert isinstance(err, ZeroCopyError)
    fell = [f.method for f in err.fallbacks]
    if backend == "portable":
        assert fell == []  # its only method is turned off: nothing left to try
    else:
        assert fell == [Method.COPY_FILE_RANGE, Method.SENDFILE]
        assert err.errno == err.fallbacks[-1].errno
