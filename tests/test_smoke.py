"""A first pass over every shape: the bytes arrive whole, by the expected method."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import zerocopy
from zerocopy import Method

from .conftest import Reader, Writer, pattern, sha


def test_file_to_file(backend: str, make_file: Callable[..., Path]) -> None:
    data = pattern(65537)
    src = make_file(data)
    dst = make_file()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        result = zerocopy.transfer(fin, fout, backend=backend)
        assert fin.tell() == len(data)
        assert fout.tell() == len(data)
    assert sha(dst.read_bytes()) == sha(data)
    assert result.transferred == len(data) and result.eof
    assert result.backend == backend
    expected = Method.READ_WRITE if backend == "portable" else Method.COPY_FILE_RANGE
    assert result.method is expected


def test_file_to_socket(backend: str, make_file: Callable[..., Path],
                        stream_pair: tuple[socket.socket, socket.socket]) -> None:
    data = pattern(1 << 20)
    a, b = stream_pair
    reader = Reader(b)
    reader.start()
    with open(make_file(data), "rb") as fin:
        result = zerocopy.transfer(fin, a, backend=backend)
    a.shutdown(socket.SHUT_WR)
    assert reader.result() == data
    assert result.transferred == len(data)
    assert result.method is (Method.READ_WRITE if backend == "portable" else Method.SENDFILE)


def test_socket_to_socket(backend: str, stream_pair: tuple[socket.socket, socket.socket]) -> None:
    data = pattern(3 << 20)
    src_w, src_r = socket.socketpair()
    a, b = stream_pair
    writer = Writer(src_w, data)
    reader = Reader(b)
    writer.start()
    reader.start()
    with src_r:
        result = zerocopy.transfer(src_r, a, backend=backend)
    a.shutdown(socket.SHUT_WR)
    writer.finish()
    assert reader.result() == data
    assert result.method is (Method.READ_WRITE if backend == "portable" else Method.SPLICE)


def test_pipe_to_file(backend: str, make_file: Callable[..., Path]) -> None:
    data = pattern(300_000)
    r, w = os.pipe()
    writer = Writer(w, data)
    writer.start()
    dst = make_file()
    with open(dst, "wb") as fout:
        result = zerocopy.transfer(r, fout, backend=backend)
    os.close(r)
    writer.finish()
    assert dst.read_bytes() == data
    assert result.transferred == len(data) and result.eof
