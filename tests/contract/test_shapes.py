"""Every shape, every size, with and without count/offset/dst_offset (docs/transfer.md, "Counts, offsets, positions").

Each case checks the destination's bytes against the expected slice of the source,
``transferred`` and ``eof``, the source and destination positions (or, for a stream
source, that exactly the rest of the stream is still unread), and which method ran.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Method

from ..support import (
    DST_PREFILL,
    Reader,
    Rig,
    Writer,
    data,
    kernel_method,
    pattern,
    sha,
)

BIG = (8 << 20) + 3
SIZES = (0, 1, 4095, 4096, 65537)


@dataclass(frozen=True)
class Case:
    """One transfer: the shape, the source size and the call's arguments."""

    src: str
    dst: str
    size: int
    count: int | None = None
    offset: int | None = None
    dst_offset: int | None = None
    #: where the source / destination fd sits before the call (files only)
    src_pos: int = 0
    dst_pos: int = 0
    chunk_size: int | None = None
    name: str = field(default="all", compare=False)

    @property
    def start(self) -> int:
        """Where in the source the transfer reads first."""
        if self.offset is not None:
            return self.offset
        return self.src_pos

    @property
    def available(self) -> int:
        return self.size - self.start

    @property
    def moved(self) -> int:
        """The bytes the transfer must deliver."""
        return self.available if self.count is None else min(self.count, self.available)

    @property
    def eof(self) -> bool:
        """A transfer stops at end of file unless ``count`` ran out first."""
        if self.src == "zero":
            return False
        return self.count is None or self.count > self.available


def _cases_for(src: str, dst: str, size: int) -> list[Case]:
    if src == "zero":  # never ends: always with a count
        return [Case(src, dst, size, count=size, name="count"),
                Case(src, dst, size, count=size // 2, name="count-half")]
    cases = [Case(src, dst, size),
             Case(src, dst, size, count=size // 2, name="count-half"),
             Case(src, dst, size, count=size + 1000, name="count-past-eof")]
    if src == "file":
        cases += [
            Case(src, dst, size, src_pos=size // 5, name="from-position"),
            Case(src, dst, size, offset=size // 3, src_pos=min(7, size), name="offset"),
            Case(src, dst, size, offset=size // 4, count=size // 2, src_pos=2 if size else 0,
                 name="offset-count"),
            Case(src, dst, size, offset=size, name="offset-at-end"),
        ]
    if dst == "file":
        cases += [
            Case(src, dst, size, dst_pos=2, name="over-prefill"),
            Case(src, dst, size, dst_offset=9, dst_pos=3, name="dst-offset-past-end"),
            Case(src, dst, size, dst_offset=size // 2, dst_pos=1, count=size // 3 + 1,
                 offset=size // 7 if src == "file" else None, name="dst-offset-count"),
        ]
    return cases


_FILE_SHAPES = [("file", d) for d in ("file", "tcp", "unix", "pipe", "null", "pty")]
_STREAM_SHAPES = [("tcp", "tcp"), ("unix", "tcp"), ("tcp", "file"), ("unix", "file"),
                  ("unix", "pipe"), ("pipe", "file"), ("pipe", "pipe"), ("pipe", "tcp"),
                  ("pipe", "unix")]
_OTHER_SHAPES = [("zero", "file"), ("zero", "pipe"), ("zero", "tcp")]
SHAPES = _FILE_SHAPES + _STREAM_SHAPES + _OTHER_SHAPES
# The big size runs for a subset: one of each kind of loop, not every combination.
_BIG_SHAPES = [("file", "file"), ("file", "tcp"), ("file", "pipe"), ("tcp", "tcp"),
               ("unix", "file"), ("pipe", "file"), ("pipe", "pipe"), ("zero", "file")]


def _all_cases() -> list[Case]:
    cases = []
    for src, dst in SHAPES:
        for size in SIZES:
            cases += _cases_for(src, dst, size)
        # Many chunks, none page-aligned: exercises every loop's bookkeeping.
        cases.append(Case(src, dst, 65537, count=65537 if src == "zero" else None,
                          chunk_size=1000, name="chunk-1000"))
    for src, dst in _BIG_SHAPES:
        cases += [c for c in _cases_for(src, dst, BIG)
                  if c.name in ("all", "count", "count-half", "offset-count",
                                "dst-offset-count")]
    return cases


CASES = _all_cases()


def _case_id(case: Case) -> str:
    return f"{case.src}-{case.dst}-{case.size}-{case.name}"


def expected_method(case: Case, backend: BackendName) -> tuple[Method, tuple[Method, ...]]:
    """The method that must have run and the methods that must have fallen back."""
    if backend == "portable":
        return Method.READ_WRITE, ()
    method = kernel_method(case.src, case.dst)
    if case.count == 0:
        return method, ()  # nothing to run: the plan's first step is named
    if method is Method.COPY_FILE_RANGE and case.moved == 0:
        # copy_file_range returning 0 at the start declines (it copies nothing from
        # procfs files before Linux 5.19); the next method then reports end of file.
        nxt = Method.READ_WRITE if case.dst_offset is not None else Method.SENDFILE
        return nxt, (Method.COPY_FILE_RANGE,)
    return method, ()


def expected_dst(case: Case, moved: bytes) -> bytes:
    """What the destination holds afterwards."""
    if case.dst == "null":
        return b""
    if case.dst != "file":
        return moved
    at = case.dst_pos if case.dst_offset is None else case.dst_offset
    buf = bytearray(DST_PREFILL)
    if moved and len(buf) < at:
        buf += bytes(at - len(buf))  # the hole a write past the end leaves
    buf[at:at + len(moved)] = moved
    return bytes(buf)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_shape(backend: BackendName, scratch: Path, case: Case) -> None:
    _check_case(scratch, case, backend, backend)


# Without backend=, plain file-source transfers take the native core's fast path
# (zerocopy._engine.fastpath): the same cases must hold there too.
_FAST_CASES = [c for c in CASES if c.src == "file" and c.chunk_size is None]


@pytest.mark.parametrize("case", _FAST_CASES, ids=_case_id)
def test_shape_default_route(backend: BackendName, scratch: Path, case: Case) -> None:
    if backend != "native" or os.environ.get("ZEROCOPY_BACKEND", "native") != "native":
        pytest.skip("the default route is the native backend's")
    _check_case(scratch, case, None, backend)


def _check_case(scratch: Path, case: Case, chosen: BackendName | None, backend: BackendName) -> None:
    content = bytes(case.size) if case.src == "zero" else data(case.size)
    moved = content[case.start:case.start + case.moved]
    with Rig(scratch, case.src, case.dst, content, src_pos=case.src_pos,
             dst_pos=case.dst_pos, expect_out=len(moved)) as rig:
        result = zerocopy.transfer(rig.src, rig.dst, case.count, offset=case.offset,
                                   dst_offset=case.dst_offset, chunk_size=case.chunk_size,
                                   backend=chosen)
        assert result.transferred == case.moved
        assert result.eof is case.eof
        assert result.backend == backend
        method, fell_back = expected_method(case, backend)
        assert result.method is method
        assert tuple(f.method for f in result.fallbacks) == fell_back
        if case.src == "file":
            # offset=None advances the source by exactly `transferred`; offset=K
            # leaves it where it was (docs/transfer.md, "Counts, offsets, positions").
            want = case.src_pos if case.offset is not None else case.src_pos + case.moved
            assert rig.src_position() == want
        elif case.src != "zero":
            assert rig.src_rest() == content[case.moved:]  # nothing over-read
        if case.dst == "file":
            want = case.dst_pos if case.dst_offset is not None else case.dst_pos + case.moved
            assert rig.dst_position() == want
        assert rig.received() == expected_dst(case, moved)


# --- a first pass over every shape, by hand: the bytes arrive whole, by the expected method

def test_file_to_file(backend: BackendName, make_file: Callable[..., Path]) -> None:
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


def test_file_to_socket(backend: BackendName, make_file: Callable[..., Path],
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


def test_socket_to_socket(backend: BackendName, stream_pair: tuple[socket.socket, socket.socket]) -> None:
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


def test_pipe_to_file(backend: BackendName, make_file: Callable[..., Path]) -> None:
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
