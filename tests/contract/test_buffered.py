"""Python buffered objects: read-ahead and unflushed writes are respected (docs/transfer.md, "Python buffers").

A buffered reader's logical position is where reading starts and its read-ahead is
not lost; a buffered writer's pending bytes land before the transferred ones.
"""

from __future__ import annotations

import io
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Method

from ..support import Reader, Writer, data, grow_pipe, unix_pair

CONTENT = data(100_003)


def test_seekable_reader_with_read_ahead(backend: BackendName, make_file: Callable[..., Path]) -> None:
    src_path, dst_path = make_file(CONTENT), make_file()
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        assert src.read(10) == CONTENT[:10]  # the buffer now holds read-ahead
        assert os.lseek(src.fileno(), 0, os.SEEK_CUR) > 10
        result = zerocopy.transfer(src, dst, 1000, backend=backend)
        assert src.tell() == 1010
        assert src.read(20) == CONTENT[1010:1030]  # reading the object goes on from there
        result2 = zerocopy.transfer(src, dst, backend=backend)
        assert src.tell() == len(CONTENT) and src.read() == b""
    assert result.transferred == 1000 and result2.transferred == len(CONTENT) - 1030
    assert dst_path.read_bytes() == CONTENT[10:1010] + CONTENT[1030:]


def test_seekable_reader_with_offset(backend: BackendName, make_file: Callable[..., Path]) -> None:
    src_path, dst_path = make_file(CONTENT), make_file()
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        src.read(10)
        zerocopy.transfer(src, dst, 500, offset=50_000, backend=backend)
        assert src.tell() == 10  # offset=K: the logical position is untouched
        assert src.read(5) == CONTENT[10:15]
    assert dst_path.read_bytes() == CONTENT[50_000:50_500]


@pytest.mark.parametrize("count", [None, 3, 20_000])
def test_socket_reader_read_ahead_first(backend: BackendName, make_file: Callable[..., Path],
                                        count: int | None) -> None:
    feed, sock = unix_pair()
    dst_path = make_file()
    with feed, sock, sock.makefile("rb") as src, open(dst_path, "wb") as dst:
        writer = Writer(feed, CONTENT)
        writer.start()
        assert src.read(5) == CONTENT[:5]  # the buffer pulled more than 5 bytes
        result = zerocopy.transfer(src, dst, count, backend=backend)
        moved = len(CONTENT) - 5 if count is None else count
        assert result.transferred == moved
        assert result.eof is (count is None)
        rest = src.read()  # the object goes on right after the transferred bytes
        writer.finish()
    assert dst_path.read_bytes() == CONTENT[5:5 + moved]
    assert rest == CONTENT[5 + moved:]


def test_pipe_reader_big_read_ahead(backend: BackendName, make_file: Callable[..., Path]) -> None:
    """A read-ahead bigger than one chunk of it is delivered whole, before the fd."""
    r, w = os.pipe()
    grow_pipe(w)
    if fcntl_pipe_size(w) < len(CONTENT):
        os.close(r)
        os.close(w)
        pytest.skip("cannot grow a pipe past 100 KB here")
    os.write(w, CONTENT[:90_000])
    dst_path = make_file()
    with open(r, "rb", buffering=1 << 20) as src, open(dst_path, "wb") as dst:
        assert src.read(5) == CONTENT[:5]  # one raw read pulled all 90 000 bytes
        os.write(w, CONTENT[90_000:])
        os.close(w)
        result = zerocopy.transfer(src, dst, backend=backend)
    assert result.transferred == len(CONTENT) - 5
    assert dst_path.read_bytes() == CONTENT[5:]


def fcntl_pipe_size(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def test_reader_covers_count(backend: BackendName, make_file: Callable[..., Path]) -> None:
    """When the read-ahead alone covers ``count``, no kernel method runs."""
    r, w = os.pipe()
    os.write(w, CONTENT[:5000])
    dst_path = make_file()
    with open(r, "rb") as src, open(dst_path, "wb") as dst:
        src.read(1)
        result = zerocopy.transfer(src, dst, 100, backend=backend)
        assert src.read(10) == CONTENT[101:111]
    os.close(w)
    assert result.method is Method.READ_WRITE and result.transferred == 100
    assert dst_path.read_bytes() == CONTENT[1:101]


def test_writer_unflushed_file(backend: BackendName, make_file: Callable[..., Path]) -> None:
    src_path, dst_path = make_file(CONTENT), make_file()
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        dst.write(b"header")  # still in the buffer
        result = zerocopy.transfer(src, dst, backend=backend)
        assert dst.tell() == 6 + len(CONTENT)
        dst.write(b"trailer")  # the object carries on after the transferred bytes
    assert result.transferred == len(CONTENT)
    assert dst_path.read_bytes() == b"header" + CONTENT + b"trailer"


def test_writer_unflushed_with_dst_offset(backend: BackendName, make_file: Callable[..., Path]) -> None:
    src_path, dst_path = make_file(CONTENT), make_file()
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        dst.write(b"0123456789")
        zerocopy.transfer(src, dst, 100, dst_offset=4, backend=backend)
        assert dst.tell() == 10
        dst.write(b"tail")  # at its own position, 10: over the transferred bytes
    assert dst_path.read_bytes() == b"0123" + CONTENT[:6] + b"tail" + CONTENT[10:100]


def test_writer_unflushed_socket(backend: BackendName, make_file: Callable[..., Path]) -> None:
    sock, peer = unix_pair()
    reader = Reader(peer)
    reader.start()
    with sock, peer, sock.makefile("wb") as dst, open(make_file(CONTENT), "rb") as src:
        dst.write(b"HTTP/1.1 200 OK\r\n\r\n")  # unflushed headers must go first
        zerocopy.transfer(src, dst, backend=backend)
        dst.write(b"after")
        dst.flush()
        sock.shutdown(socket.SHUT_WR)
        got = reader.result()
    assert got == b"HTTP/1.1 200 OK\r\n\r\n" + CONTENT + b"after"


def test_random_access_destination_with_read_ahead(backend: BackendName,
                                                   make_file: Callable[..., Path]) -> None:
    old = bytes(range(256)) * 100
    src_path, dst_path = make_file(CONTENT[:1000]), make_file(old)
    with open(src_path, "rb") as src, open(dst_path, "r+b") as dst:
        assert dst.read(10) == old[:10]  # the fd is ahead of tell() by the read-ahead
        zerocopy.transfer(src, dst, backend=backend)
        assert dst.tell() == 1010
        assert dst.read(5) == old[1010:1015]
    assert dst_path.read_bytes() == old[:10] + CONTENT[:1000] + old[1010:]


def test_named_temporary_files(backend: BackendName) -> None:
    with tempfile.NamedTemporaryFile() as src, tempfile.NamedTemporaryFile() as dst:
        src.write(CONTENT)  # unflushed, and the wrapper is not a file object itself
        src.flush()
        src.seek(7)
        result = zerocopy.transfer(src, dst, backend=backend)
        assert src.tell() == len(CONTENT) and dst.tell() == len(CONTENT) - 7
        dst.seek(0)
        assert dst.read() == CONTENT[7:]
    assert result.transferred == len(CONTENT) - 7


def test_raw_fileio(backend: BackendName, make_file: Callable[..., Path]) -> None:
    src_path, dst_path = make_file(CONTENT), make_file()
    with open(src_path, "rb", buffering=0) as src, open(dst_path, "wb", buffering=0) as dst:
        assert isinstance(src, io.FileIO)
        src.seek(3)
        zerocopy.transfer(src, dst, backend=backend)
        assert src.tell() == len(CONTENT) and dst.tell() == len(CONTENT) - 3
    assert dst_path.read_bytes() == CONTENT[3:]
