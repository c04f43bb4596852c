"""Refused up front, with a clear error, and nothing moved (docs/transfer.md, "Endpoints").

Each test checks the error type and message, and that no byte left the source or
reached the destination.
"""

from __future__ import annotations

import errno
import io
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import zerocopy
from zerocopy import BackendName, ZeroCopyError

from ..support import pattern

DATA = pattern(10000)


@pytest.fixture
def src_path(make_file: Callable[..., Path]) -> Path:
    return make_file(DATA)


@pytest.fixture
def dst_path(make_file: Callable[..., Path]) -> Path:
    return make_file(b"untouched")


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe holding DATA's first 4096 bytes."""
    r, w = os.pipe()
    os.write(w, DATA[:4096])
    try:
        yield r, w
    finally:
        os.close(r)
        os.close(w)


def _refused(exc_type: type[BaseException], match: str, src: object, dst: object,
             backend: BackendName, **kwargs: Any) -> BaseException:
    with pytest.raises(exc_type, match=match) as info:
        zerocopy.transfer(src, dst, backend=backend, **kwargs)
    return info.value


def test_offset_on_pipe_source(backend: BackendName, pipe: tuple[int, int], dst_path: Path) -> None:
    r, _ = pipe
    with open(dst_path, "r+b") as dst:
        _refused(ValueError, "offset given, but the source .pipe. is not seekable",
                 r, dst, backend, offset=0)
    assert os.read(r, 10000) == DATA[:4096]  # nothing consumed
    assert dst_path.read_bytes() == b"untouched"


def test_offset_on_socket_source(backend: BackendName, dst_path: Path) -> None:
    a, b = socket.socketpair()
    with a, b, open(dst_path, "r+b") as dst:
        b.sendall(b"hello")
        _refused(ValueError, "not seekable", a, dst, backend, offset=3)
        assert a.recv(100) == b"hello"
    assert dst_path.read_bytes() == b"untouched"


def test_dst_offset_on_stream(backend: BackendName, src_path: Path, pipe: tuple[int, int]) -> None:
    _, w = pipe
    a, b = socket.socketpair()
    with a, b, open(src_path, "rb") as src:
        _refused(ValueError, "dst_offset given, but the destination .pipe.", src, w, backend,
                 dst_offset=0)
        _refused(ValueError, "dst_offset given, but the destination .socket.", src, a,
                 backend, dst_offset=0)
        assert src.tell() == 0


def test_dst_offset_on_append(backend: BackendName, src_path: Path, dst_path: Path) -> None:
    with open(src_path, "rb") as src, open(dst_path, "ab") as dst:
        _refused(ValueError, "O_APPEND", src, dst, backend, dst_offset=0)
        assert src.tell() == 0
    assert dst_path.read_bytes() == b"untouched"


@pytest.mark.parametrize("family,kind", [
    (socket.AF_INET, socket.SOCK_DGRAM),
    (socket.AF_UNIX, socket.SOCK_DGRAM),
    (socket.AF_UNIX, socket.SOCK_SEQPACKET),
], ids=["udp", "unix-dgram", "unix-seqpacket"])
@pytest.mark.parametrize("as_fd", [False, True], ids=["object", "fd"])
def test_datagram_socket(backend: BackendName, src_path: Path, dst_path: Path, family: int,
                         kind: int, as_fd: bool) -> None:
    if family == socket.AF_INET:
        a, b = socket.socket(family, kind), socket.socket(family, kind)
        a.bind(("127.0.0.1", 0))
        b.connect(a.getsockname())
        a.connect(b.getsockname())
    else:
        a, b = socket.socketpair(family, kind)
    with a, b, open(src_path, "rb") as src, open(dst_path, "r+b") as dst:
        b.send(b"datagram")
        sock_src: object = a.fileno() if as_fd else a
        _refused(ValueError, "only stream sockets", sock_src, dst, backend)
        assert a.recv(100) == b"datagram"  # still there
        _refused(ValueError, "only stream sockets", src, b.fileno() if as_fd else b, backend)
        assert src.tell() == 0
        a.setblocking(False)
        with pytest.raises(BlockingIOError):
            a.recv(100)  # nothing was sent from the file
    assert dst_path.read_bytes() == b"untouched"


def test_text_mode_files(backend: BackendName, src_path: Path, dst_path: Path) -> None:
    with open(src_path, "r", encoding="latin-1") as tsrc, open(dst_path, "rb") as bsrc, \
            open(dst_path, "a", encoding="latin-1") as tdst, open(src_path, "r+b") as bdst:
        _refused(ValueError, "src: TextIOWrapper is a text-mode file", tsrc, bdst, backend)
        _refused(ValueError, "dst: TextIOWrapper is a text-mode file", bsrc, tdst, backend)
        assert tsrc.tell() == 0 and bsrc.tell() == 0 and bdst.tell() == 0
    assert dst_path.read_bytes() == b"untouched"
    assert src_path.read_bytes() == DATA


def test_directory(backend: BackendName, scratch: Path, src_path: Path, dst_path: Path) -> None:
    fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with open(src_path, "rb") as src, open(dst_path, "r+b") as dst:
            pairs: list[tuple[object, object]] = [(fd, dst), (src, fd)]
            for a, b in pairs:
                err = _refused(IsADirectoryError, "is a directory", a, b, backend)
                assert isinstance(err, ZeroCopyError) and err.errno == errno.EISDIR
            assert src.tell() == 0
    finally:
        os.close(fd)
    assert dst_path.read_bytes() == b"untouched"


def test_closed_fd(backend: BackendName, src_path: Path, dst_path: Path) -> None:
    with open(src_path, "rb") as src, open(dst_path, "r+b") as dst:
        r, w = os.pipe()  # after the files: their numbers are free once closed
        os.close(r)
        os.close(w)
        err = _refused(OSError, "fd .* Bad file descriptor", r, dst, backend)
        assert isinstance(err, ZeroCopyError) and err.errno == errno.EBADF
        err = _refused(OSError, "Bad file descriptor", src, w, backend)
        assert isinstance(err, ZeroCopyError) and err.errno == errno.EBADF
        assert src.tell() == 0
    closed = open(src_path, "rb")
    closed.close()
    with open(dst_path, "r+b") as dst:
        _refused(ValueError, "no usable file descriptor", closed, dst, backend)
    assert dst_path.read_bytes() == b"untouched"


def test_wrong_access_mode(backend: BackendName, src_path: Path, dst_path: Path) -> None:
    with open(src_path, "rb") as src, open(dst_path, "rb") as read_only, \
            open(dst_path, "ab") as write_only, open(src_path, "r+b") as dst:
        err = _refused(OSError, "dst: fd .* not open for writing", src, read_only, backend)
        assert isinstance(err, ZeroCopyError) and err.errno == errno.EBADF
        err = _refused(OSError, "src: fd .* not open for reading", write_only, dst, backend)
        assert isinstance(err, ZeroCopyError) and err.errno == errno.EBADF
        assert src.tell() == 0
    assert dst_path.read_bytes() == b"untouched"
    assert src_path.read_bytes() == DATA


@pytest.mark.parametrize("kwargs,exc_type,match", [
    ({"count": -1}, ValueError, "count must be >= 0"),
    ({"offset": -1}, ValueError, "offset must be >= 0"),
    ({"dst_offset": -5}, ValueError, "dst_offset must be >= 0"),
    ({"count": True}, TypeError, "count must be an int"),
    ({"offset": 1.5}, TypeError, "offset must be an int"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int"),
    ({"timeout": -1.0}, ValueError, "timeout must be >= 0"),
    ({"timeout": float("nan")}, ValueError, "timeout must be >= 0"),
], ids=lambda v: str(v) if not isinstance(v, dict) else "-".join(map(str, v.items())))
def test_bad_numbers(backend: BackendName, src_path: Path, dst_path: Path, kwargs: dict[str, Any],
                     exc_type: type[BaseException], match: str) -> None:
    with open(src_path, "rb") as src, open(dst_path, "r+b") as dst:
        src.seek(3)
        _refused(exc_type, match, src, dst, backend, **kwargs)
        assert src.tell() == 3
    assert dst_path.read_bytes() == b"untouched"


def test_not_an_fd(backend: BackendName, src_path: Path, dst_path: Path) -> None:
    with open(src_path, "rb") as src, open(dst_path, "r+b") as dst:
        _refused(TypeError, "expected an fd", "not a file", dst, backend)
        _refused(TypeError, "got a bool", src, True, backend)
        _refused(ValueError, "src: BytesIO", io.BytesIO(b"x"), dst,
                 backend)
        _refused(ValueError, "invalid file descriptor -1", src, -1, backend)
        assert src.tell() == 0
    assert dst_path.read_bytes() == b"untouched"


def test_unknown_backend(src_path: Path, dst_path: Path) -> None:
    with open(src_path, "rb") as src, open(dst_path, "r+b") as dst:
        with pytest.raises(ValueError, match="unknown zerocopy backend 'nope'"):
            zerocopy.transfer(src, dst, backend="nope")  # type: ignore[arg-type]
        assert src.tell() == 0
    assert dst_path.read_bytes() == b"untouched"


@pytest.mark.parametrize("name", ["count", "offset", "dst_offset"])
def test_numbers_from_2_63_are_refused(backend: BackendName, src_path: Path, dst_path: Path,
                                       name: str) -> None:
    """off_t is a signed 64-bit number: 2**63 and more is refused up front, with the
    same error on the default route (the fast path declines such numbers)."""
    numbers: dict[str, int | None] = {"count": None, "offset": None, "dst_offset": None}
    numbers[name] = 1 << 63
    with open(src_path, "rb") as src, open(dst_path, "r+b") as dst:
        for chosen in (backend, None):
            with pytest.raises(ValueError, match=r"below 2\*\*63"):
                zerocopy.transfer(src, dst, numbers["count"], offset=numbers["offset"],
                                  dst_offset=numbers["dst_offset"], backend=chosen)
        assert src.tell() == 0
    assert dst_path.read_bytes() == b"untouched"
