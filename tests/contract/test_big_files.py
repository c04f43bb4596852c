"""Offsets and positions above 4 GiB (docs/transfer.md, "Counts, offsets, positions": all counts are 64-bit).

The files are sparse on tmpfs: a few hundred KiB of real bytes placed past 4 GiB, so
a truncation to 32 bits anywhere (offset, position, count) reads the hole instead
and the hashes differ.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Method

from ..support import Reader, data, sha, tcp_pair

FOUR_G = 1 << 32
PAYLOAD = data(3 * 65537)
#: where the real bytes sit: above 4 GiB, not page-aligned
PAYLOAD_AT = FOUR_G + 3 * 4096 + 17
#: the window transferred: 100 bytes of hole, the payload, 100 bytes of hole
WINDOW_AT = PAYLOAD_AT - 100
WINDOW = bytes(100) + PAYLOAD + bytes(100)
FILE_SIZE = PAYLOAD_AT + len(PAYLOAD) + 5000


@pytest.fixture
def big_file(scratch: Path) -> Iterator[Path]:
    """A sparse file of FILE_SIZE bytes (> 4 GiB) with PAYLOAD at PAYLOAD_AT."""
    path = scratch / "big"
    with open(path, "wb") as f:
        f.truncate(FILE_SIZE)
        f.seek(PAYLOAD_AT)
        f.write(PAYLOAD)
    yield path
    path.unlink()


def _kernel(backend: BackendName, method: Method) -> Method:
    return Method.READ_WRITE if backend == "portable" else method


def test_file_to_file_window_at_offset(backend: BackendName, big_file: Path, scratch: Path) -> None:
    dst = scratch / "dst"
    with open(big_file, "rb") as fin, open(dst, "wb") as fout:
        fin.seek(5)
        result = zerocopy.transfer(fin, fout, len(WINDOW), offset=WINDOW_AT, backend=backend)
        assert fin.tell() == 5  # offset=K: the source position is untouched
        assert fout.tell() == len(WINDOW)
    assert result.transferred == len(WINDOW) and not result.eof
    assert result.method is _kernel(backend, Method.COPY_FILE_RANGE)
    assert sha(dst.read_bytes()) == sha(WINDOW)


def test_file_to_file_positions_above_4g(backend: BackendName, big_file: Path, scratch: Path) -> None:
    dst = scratch / "dst"
    dst_at = FOUR_G + 3  # a positional write above 4 GiB into another sparse file
    with open(big_file, "rb") as fin, open(dst, "w+b") as fout:
        fin.seek(WINDOW_AT)
        fout.seek(11)
        result = zerocopy.transfer(fin, fout, len(WINDOW), dst_offset=dst_at, backend=backend)
        assert fin.tell() == WINDOW_AT + len(WINDOW)
        assert fout.tell() == 11  # dst_offset=K: the destination position is untouched
        assert os.fstat(fout.fileno()).st_size == dst_at + len(WINDOW)
        assert sha(os.pread(fout.fileno(), len(WINDOW) + 10, dst_at)) == sha(WINDOW)
    assert result.transferred == len(WINDOW)
    assert result.method is _kernel(backend, Method.COPY_FILE_RANGE)


def test_file_to_file_until_eof_above_4g(backend: BackendName, big_file: Path, scratch: Path) -> None:
    dst = scratch / "dst"
    with open(big_file, "rb") as fin, open(dst, "wb") as fout:
        fin.seek(WINDOW_AT)
        result = zerocopy.transfer(fin, fout, backend=backend)
        assert fin.tell() == FILE_SIZE
    tail = bytes(100) + PAYLOAD + bytes(FILE_SIZE - PAYLOAD_AT - len(PAYLOAD))
    assert result.transferred == len(tail) and result.eof
    assert sha(dst.read_bytes()) == sha(tail)


@pytest.mark.parametrize("use_offset", [True, False], ids=["offset", "position"])
def test_file_to_socket_above_4g(backend: BackendName, big_file: Path, use_offset: bool) -> None:
    sock, peer = tcp_pair()
    with sock, peer, open(big_file, "rb") as fin:
        reader = Reader(peer)
        reader.start()
        fin.seek(7 if use_offset else WINDOW_AT)
        result = zerocopy.transfer(fin, sock, len(WINDOW), backend=backend,
                                   offset=WINDOW_AT if use_offset else None)
        sock.shutdown(socket.SHUT_WR)
        assert sha(reader.result()) == sha(WINDOW)
        assert fin.tell() == (7 if use_offset else WINDOW_AT + len(WINDOW))
    assert result.transferred == len(WINDOW)
    assert result.method is _kernel(backend, Method.SENDFILE)
