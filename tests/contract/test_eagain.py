"""EAGAIN by what it means (issue 11), beyond poll's own (tests/contract/test_faults.py):
from the pipe -> file leg of a splice it is about our pipe and is waited out; from a
regular file (GPFS, python/cpython#87909) part way it fails over, never spins."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Method, TransferError
from zerocopy._constants import POLL_AGAIN_TRIES
from zerocopy.pytest_plugin import FaultInjector

from ..support import Writer, pattern, tcp_pair

CHUNK = 1 << 16
Make = Callable[..., Path]


def _kernel_backend(backend: BackendName) -> None:
    if backend == "portable":
        pytest.skip("the portable backend makes no splice calls")


def _socket_to_file(backend: BackendName, make_file: Make, data: bytes,
                    timeout: float | None) -> tuple[zerocopy.TransferResult | None,
                                                    TransferError | None, bytes, bytes]:
    a, b = tcp_pair()
    # Two chunks queued before the transfer starts: the first two fills find bytes (a
    # real EAGAIN would count as a splice call and shift the injected one).
    b.sendall(data[:2 * CHUNK])
    writer = Writer(b, data[2 * CHUNK:])
    writer.start()
    dst_path = make_file()
    a.settimeout(timeout)
    result = error = None
    with a, open(dst_path, "wb") as dst:
        try:
            result = zerocopy.transfer(a, dst, chunk_size=CHUNK, backend=backend)
        except TransferError as exc:
            error = exc
        rest = b"" if error is None else error.residue + _recv_all(a)
    writer.finish()
    return result, error, dst_path.read_bytes(), rest


def _recv_all(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("timeout", [None, 30], ids=["blocking", "timeout"])
def test_pipe_to_file_leg_eagain_is_waited_out(backend: BackendName, make_file: Make,
                                               zerocopy_faults: FaultInjector,
                                               timeout: float | None) -> None:
    _kernel_backend(backend)
    data = pattern(6 * CHUNK + 9)
    # fill, drain, fill, then the drain fails three times in a row
    zerocopy_faults.fail("splice", errno.EAGAIN, times=3, skip=3)
    result, error, got, _ = _socket_to_file(backend, make_file, data, timeout)
    assert error is None, error
    assert result is not None and result.method is Method.SPLICE and result.fallbacks == ()
    assert got == data and zerocopy_faults.pending("splice") == 0


def test_pipe_to_file_leg_eagain_without_end_is_raised_with_the_residue(
        backend: BackendName, make_file: Make, zerocopy_faults: FaultInjector) -> None:
    _kernel_backend(backend)
    data = pattern(6 * CHUNK)
    zerocopy_faults.fail("splice", errno.EAGAIN, times=1000, skip=3)
    started = time.monotonic()
    result, error, got, rest = _socket_to_file(backend, make_file, data, None)
    assert time.monotonic() - started < 10  # bounded: POLL_AGAIN_TRIES sleeps, 255 ms
    assert error is not None and error.errno == errno.EAGAIN
    assert error.transferred == len(got) and 0 < len(error.residue) <= CHUNK
    assert got + rest == data  # every byte delivered or handed back
    assert zerocopy_faults.pending("splice") == 1000 - POLL_AGAIN_TRIES - 1


def test_file_eagain_part_way_fails_over_without_spinning(
        backend: BackendName, make_file: Make, zerocopy_faults: FaultInjector) -> None:
    # A regular file cannot be polled: its EAGAIN (GPFS) is "this method can't".
    _kernel_backend(backend)
    data = pattern(5 * CHUNK)
    src_path, dst_path = make_file(data), make_file()
    zerocopy_faults.fail("copy_file_range", errno.EAGAIN, times=1000, skip=1)
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        result = zerocopy.transfer(src, dst, chunk_size=CHUNK, backend=backend)
    assert dst_path.read_bytes() == data and result.method is Method.SENDFILE
    assert [(f.method, f.errno, f.offset) for f in result.fallbacks] == [
        (Method.COPY_FILE_RANGE, errno.EAGAIN, CHUNK)]
    assert zerocopy_faults.pending("copy_file_range") == 999  # one call met it, no loop
