"""Failover part way through: a method that says "can't" after moving bytes from a
seekable source hands over to the next one at exactly the byte where it stopped
(docs/transfer.md, "Errors and fallback"); "broken or full" errors still raise."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Fallback, Method, TransferError
from zerocopy._errors import from_a_call, from_a_wait, transfer_error
from zerocopy.pytest_plugin import FaultInjector

from ..support import Reader, Writer, pattern, sha, tcp_pair

CHUNK = 1 << 16
Make = Callable[..., Path]


def _kernel_backend(backend: BackendName) -> None:
    if backend == "portable":
        pytest.skip("the portable backend has one method: nothing to fail over to")


@pytest.mark.parametrize("offset,count", [(None, None), (1000, 5 * CHUNK + 7)])
def test_copy_file_range_eio_part_way_resumes_with_sendfile(
        backend: BackendName, zerocopy_faults: FaultInjector, make_file: Make,
        offset: int | None, count: int | None) -> None:
    _kernel_backend(backend)
    data = pattern(8 * CHUNK + 3)
    src_path, dst_path = make_file(data), make_file()
    zerocopy_faults.fail("copy_file_range", errno.EIO, skip=2)  # CIFS, golang/go#42334
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        src.seek(5)
        result = zerocopy.transfer(src, dst, count, offset=offset, chunk_size=CHUNK,
                                   backend=backend)
        start = 5 if offset is None else offset
        want = data[start:] if count is None else data[start:start + count]
        assert src.tell() == (5 + len(want) if offset is None else 5)
        assert dst.tell() == len(want)
    assert sha(dst_path.read_bytes()) == sha(want)
    assert result.transferred == len(want) and result.method is Method.SENDFILE
    assert result.fallbacks == (Fallback(Method.COPY_FILE_RANGE, errno.EIO,
                                         os.strerror(errno.EIO), 2 * CHUNK),)


def test_sendfile_einval_part_way_to_a_socket_resumes(
        backend: BackendName, zerocopy_faults: FaultInjector, make_file: Make) -> None:
    _kernel_backend(backend)
    data = pattern(6 * CHUNK)
    a, b = tcp_pair()
    reader = Reader(b)
    reader.start()
    zerocopy_faults.fail("sendfile", errno.EINVAL, skip=3)
    with a, open(make_file(data), "rb") as src:
        result = zerocopy.transfer(src, a, chunk_size=CHUNK, backend=backend)
        a.shutdown(socket.SHUT_WR)
        assert src.tell() == len(data)
    assert reader.result() == data  # nothing duplicated, nothing lost
    b.close()
    assert result.method is Method.SPLICE  # the next step of file -> socket
    assert [(f.method, f.offset) for f in result.fallbacks] == [(Method.SENDFILE, 3 * CHUNK)]


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EBADF])
def test_broken_or_full_part_way_raises(backend: BackendName, zerocopy_faults: FaultInjector,
                                        make_file: Make, err: int) -> None:
    _kernel_backend(backend)
    data = pattern(4 * CHUNK)
    src_path, dst_path = make_file(data), make_file()
    zerocopy_faults.fail("copy_file_range", err, skip=1)
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, dst, chunk_size=CHUNK, backend=backend)
        assert src.tell() == CHUNK
    assert info.value.errno == err and info.value.transferred == CHUNK
    assert info.value.method is Method.COPY_FILE_RANGE and not info.value.fallbacks
    assert dst_path.read_bytes() == data[:CHUNK]


def test_a_socket_source_never_fails_over_part_way(
        backend: BackendName, zerocopy_faults: FaultInjector, make_file: Make) -> None:
    """What a socket gave up cannot be read again: raise, with the residue."""
    _kernel_backend(backend)
    data = pattern(4 * CHUNK)
    feed, src = tcp_pair()
    feed.sendall(data[:CHUNK])
    writer = Writer(feed, data[CHUNK:])
    writer.start()
    dst_path = make_file()
    zerocopy_faults.fail("splice", errno.EINVAL, skip=2)  # the second fill of our pipe
    with src, open(dst_path, "wb") as dst:
        src.settimeout(30)
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, dst, chunk_size=CHUNK, backend=backend)
        src.close()
    writer.join(30)
    err = info.value
    assert err.errno == errno.EINVAL and 0 < err.transferred
    assert dst_path.read_bytes() == data[:err.transferred]
    assert err.residue == b""  # the failed call consumed nothing


def test_every_method_failing_part_way_is_a_transfer_error(
        backend: BackendName, zerocopy_faults: FaultInjector, make_file: Make) -> None:
    _kernel_backend(backend)
    data = pattern(8 * CHUNK)
    src_path, dst_path = make_file(data), make_file()
    zerocopy_faults.fail("copy_file_range", errno.EXDEV, skip=1)
    zerocopy_faults.fail("sendfile", errno.EINVAL, skip=1)
    zerocopy_faults.fail("read", errno.EINVAL, skip=1)
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, dst, chunk_size=CHUNK, backend=backend)
        err = info.value
        assert src.tell() == err.transferred == 3 * CHUNK
    assert err.method is Method.READ_WRITE and err.errno == errno.EINVAL
    assert [(f.method, f.offset) for f in err.fallbacks] == [
        (Method.COPY_FILE_RANGE, CHUNK), (Method.SENDFILE, 2 * CHUNK)]
    assert dst_path.read_bytes() == data[:3 * CHUNK]


def test_the_fast_path_hands_over_part_way(monkeypatch: pytest.MonkeyPatch,
                                           make_file: Make) -> None:
    """The compiled fast path raises after progress; transfer() resumes on the full
    path without that method.  (Injected faults turn the fast path off, so its
    failure is stood in for here: it moves CHUNK bytes, then says EIO.)"""
    from zerocopy._engine import transfer as engine

    if "native" not in zerocopy.available_backends():
        pytest.skip("no compiled core: no fast path")
    data = pattern(5 * CHUNK)
    src_path, dst_path = make_file(data), make_file()

    def fast_then_eio(src: object, dst: object, count: int | None, offset: int | None,
                      dst_offset: int | None) -> zerocopy.TransferResult | None:
        assert hasattr(src, "fileno") and hasattr(dst, "fileno")
        moved = os.copy_file_range(src.fileno(), dst.fileno(), CHUNK)
        os.lseek(src.fileno(), moved, os.SEEK_SET)  # as the fast path leaves it
        # marked as the core marks a method's own call failing (fastpath.pxi)
        raise from_a_call(transfer_error(errno.EIO, Method.COPY_FILE_RANGE, moved))

    monkeypatch.setattr(engine, "fast_transfer", fast_then_eio)
    with open(src_path, "rb", buffering=0) as src, open(dst_path, "wb") as dst:
        result = zerocopy.transfer(src, dst)
        assert src.tell() == len(data)
    assert dst_path.read_bytes() == data
    assert result.transferred == len(data) and result.method is Method.SENDFILE
    assert [(f.method, f.errno, f.offset) for f in result.fallbacks] == [
        (Method.COPY_FILE_RANGE, errno.EIO, CHUNK)]


@pytest.mark.parametrize("err,mark", [(errno.EAGAIN, from_a_wait), (errno.EINVAL, None)])
def test_the_fast_path_hands_over_only_a_methods_cannot(
        monkeypatch: pytest.MonkeyPatch, make_file: Make, err: int,
        mark: Callable[[OSError], OSError] | None) -> None:
    """A failed wait in the fast path (poll's EAGAIN, marked a wait's) is raised, not
    resumed, though EAGAIN from a method would be "can't"; so is an error the core did
    not mark as its call's (a signal handler's, say)."""
    from zerocopy._engine import transfer as engine

    if "native" not in zerocopy.available_backends():
        pytest.skip("no compiled core: no fast path")
    src_path, dst_path = make_file(pattern(5 * CHUNK)), make_file()

    def fast_then_fail(src: object, dst: object, count: int | None, offset: int | None,
                       dst_offset: int | None) -> zerocopy.TransferResult | None:
        assert hasattr(src, "fileno") and hasattr(dst, "fileno")
        moved = os.copy_file_range(src.fileno(), dst.fileno(), CHUNK)
        os.lseek(src.fileno(), moved, os.SEEK_SET)
        exc = transfer_error(err, Method.SENDFILE, moved)
        raise exc if mark is None else mark(exc)

    monkeypatch.setattr(engine, "fast_transfer", fast_then_fail)
    with open(src_path, "rb", buffering=0) as src, open(dst_path, "wb") as dst:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, dst)
        assert src.tell() == CHUNK
    assert info.value.errno == err and info.value.transferred == CHUNK
    assert info.value.fallbacks == ()
    assert dst_path.read_bytes() == pattern(5 * CHUNK)[:CHUNK]
