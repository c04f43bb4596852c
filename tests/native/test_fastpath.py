"""The default route's fast path (one core call) keeps every rule of the full path."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import zerocopy
from zerocopy import Method

from ..support import Reader, pattern

pytestmark = pytest.mark.skipif("native" not in zerocopy.available_backends(),
                                reason="the fast path is the native core's")


def _send(src: object, count: int | None = None, offset: int | None = None) -> tuple[
        zerocopy.TransferResult, bytes]:
    a, b = socket.socketpair()
    reader = Reader(b)
    reader.start()
    with a:
        result = zerocopy.transfer(src, a, count, offset=offset)
    return result, reader.result()


def test_buffered_reader_starts_at_its_logical_position(make_file: Callable[..., Path]) -> None:
    data = pattern(200_000)
    with open(make_file(data), "rb") as f:
        assert f.read(10) == data[:10]  # the buffer now holds read-ahead past 10
        result, got = _send(f, 50_000)
        assert got == data[10:50_010]
        assert f.tell() == 50_010
        assert f.read(5) == data[50_010:50_015]
    assert result.method is Method.SENDFILE and result.transferred == 50_000


def test_buffered_reader_with_offset_keeps_its_position(make_file: Callable[..., Path]) -> None:
    data = pattern(100_000)
    with open(make_file(data), "rb") as f:
        assert f.read(7) == data[:7]
        result, got = _send(f, 1000, offset=90_000)
        assert got == data[90_000:91_000]
        assert f.tell() == 7 and f.read(3) == data[7:10]
    assert result.transferred == 1000 and not result.eof


def test_buffered_reader_over_a_pipe_takes_the_full_path() -> None:
    r, w = os.pipe()
    os.write(w, b"hello, world")
    os.close(w)
    with open(r, "rb") as f:
        assert f.read(1) == b"h"  # the rest sits in the Python buffer
        result, got = _send(f)
    assert got == b"ello, world" and result.eof


def test_datagram_socket_is_refused_not_sent(make_file: Callable[..., Path]) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b, open(make_file(b"x" * 100), "rb", buffering=0) as f:
        with pytest.raises(ValueError, match="stream"):
            zerocopy.transfer(f.fileno(), a.fileno())
        assert f.tell() == 0


def test_append_destination_by_int_fd(make_file: Callable[..., Path]) -> None:
    src = make_file(b"0123456789")
    dst = make_file(b"head:")
    fin = os.open(src, os.O_RDONLY)
    fout = os.open(dst, os.O_WRONLY | os.O_APPEND)
    try:
        result = zerocopy.transfer(fin, fout)
        assert os.lseek(fin, 0, os.SEEK_CUR) == 10
    finally:
        os.close(fin)
        os.close(fout)
    assert dst.read_bytes() == b"head:0123456789"
    assert result.method is Method.READ_WRITE


def test_write_only_source_by_int_fd_is_refused(make_file: Callable[..., Path]) -> None:
    fin = os.open(make_file(b"abc"), os.O_WRONLY)
    fout = os.open(os.devnull, os.O_WRONLY)
    try:
        with pytest.raises(zerocopy.ZeroCopyError, match="not open for reading"):
            zerocopy.transfer(fin, fout)
    finally:
        os.close(fin)
        os.close(fout)
