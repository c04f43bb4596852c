"""The fault-injection seam (``zerocopy._faults``, the ``zerocopy_faults`` fixture):
an injected errno takes the same path a real one would, in every backend."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Method, TransferError, UnsupportedTransfer
from zerocopy._faults import SYSCALLS, Syscall, inject
from zerocopy.pytest_plugin import FaultInjector

from ..support import Reader, Writer, pattern, sha, tcp_pair

CHUNK = 1 << 16
KERNEL_BACKENDS = ("native", "os")  # the backends with sendfile/splice/copy_file_range


def _skip_unless_kernel_methods(backend: BackendName) -> None:
    if backend not in KERNEL_BACKENDS:
        pytest.skip(f"the {backend!r} backend makes no sendfile/splice/copy_file_range calls")


def test_epipe_on_second_sendfile(backend: BackendName, zerocopy_faults: FaultInjector,
                                  make_file: Callable[..., Path]) -> None:
    _skip_unless_kernel_methods(backend)
    data = pattern(4 * CHUNK)
    a, b = socket.socketpair()
    reader = Reader(b)
    reader.start()
    zerocopy_faults.fail("sendfile", errno.EPIPE, skip=1)
    with a, open(make_file(data), "rb") as src:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, a, chunk_size=CHUNK, backend=backend)
        assert src.tell() == CHUNK  # the source position says what was delivered
    err = info.value
    assert isinstance(err, BrokenPipeError)
    assert err.transferred == CHUNK and err.method is Method.SENDFILE
    assert reader.result() == data[:CHUNK]
    b.close()
    assert zerocopy_faults.pending("sendfile") == 0


def test_einval_on_first_sendfile_falls_back(backend: BackendName, zerocopy_faults: FaultInjector,
                                             make_file: Callable[..., Path]) -> None:
    _skip_unless_kernel_methods(backend)
    data = pattern(3 * CHUNK + 5)
    a, b = socket.socketpair()
    reader = Reader(b)
    reader.start()
    zerocopy_faults.fail("sendfile", errno.EINVAL)
    with a, open(make_file(data), "rb") as src:
        result = zerocopy.transfer(src, a, chunk_size=CHUNK, backend=backend)
        a.shutdown(socket.SHUT_WR)
    assert [(f.method, f.errno) for f in result.fallbacks] == [(Method.SENDFILE, errno.EINVAL)]
    assert result.method is Method.SPLICE and result.transferred == len(data)
    assert reader.result() == data
    b.close()


def test_exdev_on_copy_file_range_falls_back_on_the_fast_path_too(
        zerocopy_faults: FaultInjector, make_file: Callable[..., Path]) -> None:
    """Plain int fds and no options: the call the fast path serves.  An armed fault
    sends it down the full path, where the fallback is seen and recorded."""
    if "native" not in zerocopy.available_backends():
        pytest.skip("no native core here")
    data = pattern(100_000)
    src_fd = os.open(make_file(data), os.O_RDONLY)
    dst_path = make_file()
    dst_fd = os.open(dst_path, os.O_WRONLY)
    try:
        zerocopy_faults.fail("copy_file_range", errno.EXDEV)
        result = zerocopy.transfer(src_fd, dst_fd)
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    assert [(f.method, f.errno) for f in result.fallbacks] == [
        (Method.COPY_FILE_RANGE, errno.EXDEV)]
    assert result.method is Method.SENDFILE
    assert sha(dst_path.read_bytes()) == sha(data)


def test_splice_failure_hands_back_the_bytes_in_our_pipe(
        backend: BackendName, zerocopy_faults: FaultInjector) -> None:
    """Socket to socket goes src -> our pipe -> dst: the 2nd splice is the first drain.
    When it fails, the bytes already taken from the source socket come back as residue."""
    _skip_unless_kernel_methods(backend)
    data = pattern(2 * CHUNK)
    src_w, src_r = socket.socketpair()
    dst_a, dst_b = socket.socketpair()
    # Queued before the transfer starts, so the first splice finds bytes (an EAGAIN
    # there would be retried after a poll, and the retry would meet the fault).
    src_w.sendall(data)
    src_w.close()
    zerocopy_faults.fail("splice", errno.ECONNRESET, skip=1)
    with src_r, dst_a, dst_b:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src_r, dst_a, chunk_size=CHUNK, backend=backend)
        err = info.value
        assert isinstance(err, ConnectionResetError)
        assert err.transferred == 0 and err.method is Method.SPLICE
        assert 0 < len(err.residue) <= CHUNK
        rest = b"".join(iter(lambda: src_r.recv(1 << 20), b""))
    assert err.residue + rest == data  # nothing lost, nothing reordered


def test_write_failure_after_progress(backend: BackendName, zerocopy_faults: FaultInjector,
                                      make_file: Callable[..., Path]) -> None:
    """read/write: EIO on the 3rd write raises with the count of what was written."""
    data = pattern(5 * CHUNK)
    dst_path = make_file()
    zerocopy_faults.fail("write", errno.EIO, skip=2)
    with zerocopy.use_backend(backend):
        with zerocopy_disable("copy_file_range,sendfile,splice"):
            with open(make_file(data), "rb") as src, open(dst_path, "wb") as dst:
                with pytest.raises(TransferError) as info:
                    zerocopy.transfer(src, dst, chunk_size=CHUNK)
    assert info.value.errno == errno.EIO and info.value.method is Method.READ_WRITE
    assert info.value.transferred == 2 * CHUNK
    assert dst_path.read_bytes() == data[: 2 * CHUNK]


def test_read_failure_before_any_byte(backend: BackendName, zerocopy_faults: FaultInjector) -> None:
    """EIO from the first read of a pipe (no method left to fall back to) is raised."""
    r, w = os.pipe()
    os.write(w, b"abc")
    os.close(w)
    sink_r, sink_w = os.pipe()
    zerocopy_faults.fail("read", errno.EIO)
    try:
        with zerocopy_disable("splice"), pytest.raises(TransferError) as info:
            zerocopy.transfer(r, sink_w, backend=backend)
        assert info.value.errno == errno.EIO and info.value.transferred == 0
        # Nothing was consumed: the fault stood in for the call.
        assert os.read(r, 10) == b"abc"
    finally:
        for fd in (r, sink_r, sink_w):
            os.close(fd)


def test_eagain_on_a_socket_waits_and_completes(backend: BackendName, zerocopy_faults: FaultInjector,
                                                make_file: Callable[..., Path]) -> None:
    """EAGAIN on a pollable destination means "wait": the transfer polls and goes on."""
    data = pattern(4 * CHUNK)
    a, b = socket.socketpair()
    a.setblocking(False)
    reader = Reader(b)
    reader.start()
    syscall: Syscall = "write" if backend == "portable" else "sendfile"
    zerocopy_faults.fail(syscall, errno.EAGAIN, times=2, skip=1)
    with a, open(make_file(data), "rb") as src:
        result = zerocopy.transfer(src, a, chunk_size=CHUNK, backend=backend)
        a.shutdown(socket.SHUT_WR)
    assert result.transferred == len(data) and not result.fallbacks
    assert reader.result() == data
    assert zerocopy_faults.pending(syscall) == 0
    b.close()


def test_poll_failure_is_raised(backend: BackendName, zerocopy_faults: FaultInjector,
                                make_file: Callable[..., Path]) -> None:
    data = pattern(4 * CHUNK)
    a, b = socket.socketpair()
    a.setblocking(False)
    syscall: Syscall = "write" if backend == "portable" else "sendfile"
    zerocopy_faults.fail(syscall, errno.EAGAIN, skip=1)  # forces a wait after chunk 1
    zerocopy_faults.fail("poll", errno.ENOMEM)
    with a, b, open(make_file(data), "rb") as src:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, a, chunk_size=CHUNK, backend=backend)
    assert info.value.errno == errno.ENOMEM and info.value.transferred == CHUNK


def test_eintr_is_retried(backend: BackendName, zerocopy_faults: FaultInjector,
                          make_file: Callable[..., Path]) -> None:
    data = pattern(3 * CHUNK)
    dst_path = make_file()
    names: tuple[Syscall, ...] = ("copy_file_range", "sendfile", "read", "write")
    for name in names:
        zerocopy_faults.fail(name, errno.EINTR, times=2)
    with open(make_file(data), "rb") as src, open(dst_path, "wb") as dst:
        result = zerocopy.transfer(src, dst, chunk_size=CHUNK, backend=backend)
    assert result.transferred == len(data) and not result.fallbacks
    assert sha(dst_path.read_bytes()) == sha(data)
    used: Syscall = "read" if backend == "portable" else "copy_file_range"
    assert zerocopy_faults.pending(used) == 0  # both EINTRs were met, and retried


def test_every_kernel_method_failing_is_unsupported(
        backend: BackendName, zerocopy_faults: FaultInjector, make_file: Callable[..., Path]) -> None:
    """EINVAL from every method before a byte moved: UnsupportedTransfer, with each
    method's answer, and nothing written."""
    dst_path = make_file()
    names: tuple[Syscall, ...] = ("copy_file_range", "sendfile", "read")
    for name in names:
        zerocopy_faults.fail(name, errno.EINVAL)
    with open(make_file(b"data"), "rb") as src, open(dst_path, "wb") as dst:
        with pytest.raises(UnsupportedTransfer) as info:
            zerocopy.transfer(src, dst, backend=backend)
        assert src.tell() == 0
    expected = {"native": 3, "os": 3, "portable": 1}[backend]
    assert [f.errno for f in info.value.fallbacks] == [errno.EINVAL] * expected
    assert dst_path.read_bytes() == b""


def test_faults_fire_in_whichever_thread_calls(zerocopy_faults: FaultInjector,
                                               make_file: Callable[..., Path]) -> None:
    zerocopy_faults.fail("read", errno.EIO)
    errors: list[BaseException] = []

    def worker() -> None:
        with open(make_file(b"x" * 10), "rb") as src, open(make_file(), "wb") as dst:
            try:
                zerocopy.transfer(src, dst, backend="portable")
            except TransferError as exc:
                errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    assert [e.errno for e in errors] == [errno.EIO]  # type: ignore[attr-defined]


def test_counts_and_validation(zerocopy_faults: FaultInjector) -> None:
    assert SYSCALLS == ("sendfile", "splice", "copy_file_range", "read", "write", "poll")
    zerocopy_faults.fail("splice", errno.EPIPE, times=3, skip=2)
    assert zerocopy_faults.pending("splice") == 3
    zerocopy_faults.fail("splice", errno.EPIPE, times=0)  # replaces: disarmed
    assert zerocopy_faults.pending("splice") == 0
    with pytest.raises(ValueError, match="cannot inject"):
        inject("open", errno.EIO)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        inject("read", 0)
    with pytest.raises(ValueError):
        inject("read", errno.EIO, times=-1)
    zerocopy_faults.fail("read", errno.EIO, times=5)
    zerocopy_faults.clear()
    assert all(zerocopy_faults.pending(name) == 0 for name in SYSCALLS)


class zerocopy_disable:  # noqa: N801 - reads as a function
    """Set ZEROCOPY_DISABLE for a block (restored after)."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.saved: str | None = None

    def __enter__(self) -> None:
        self.saved = os.environ.get("ZEROCOPY_DISABLE")
        os.environ["ZEROCOPY_DISABLE"] = self.value

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            os.environ.pop("ZEROCOPY_DISABLE", None)
        else:
            os.environ["ZEROCOPY_DISABLE"] = self.saved


def test_python_table_without_the_core(monkeypatch: pytest.MonkeyPatch,
                                       make_file: Callable[..., Path]) -> None:
    """Where the core is not built, a Python table stands in for the C one (here the
    core is hidden from _faults, on top of real transfers by the pure-Python backends)."""
    from zerocopy import _faults

    monkeypatch.setattr(_faults, "_HAVE_CORE", False)
    data = pattern(4 * CHUNK)
    try:
        inject("read", errno.EIO, skip=2)
        assert _faults.pending("read") == 1
        dst = make_file()
        with open(make_file(data), "rb") as src, open(dst, "wb") as out:
            with pytest.raises(TransferError) as info:
                zerocopy.transfer(src, out, chunk_size=CHUNK, backend="portable")
        assert info.value.transferred == 2 * CHUNK and dst.read_bytes() == data[: 2 * CHUNK]
        assert _faults.pending("read") == 0
        inject("write", errno.EINTR, times=3)  # retried: the transfer completes
        with open(make_file(data), "rb") as src, open(dst, "wb") as out:
            result = zerocopy.transfer(src, out, chunk_size=CHUNK, backend="portable")
        assert result.transferred == len(data) and dst.read_bytes() == data
        assert _faults.pending("write") == 0
    finally:
        _faults.clear()


# -- poll(2) itself failing with EAGAIN ("may be attempted again") -------------------------

# Per shape (file -> TCP, TCP -> TCP, TCP -> file) and backend: the call whose EAGAIN
# forces a wait after the first chunk, and how many calls that chunk takes (a splice
# through our pipe is two: fill, then drain).
_FORCE_WAIT: dict[str, dict[str, tuple[Syscall, int]]] = {
    "f2s": {"native": ("sendfile", 1), "os": ("sendfile", 1), "portable": ("write", 1)},
    "s2s": {"native": ("splice", 2), "os": ("splice", 2), "portable": ("read", 1)},
    "s2f": {"native": ("splice", 2), "os": ("splice", 2), "portable": ("read", 1)},
}


def _poll_again_run(backend: BackendName, faults: FaultInjector, shape: str, scratch: Path,
                    poll_failures: int, timeout: float | None = 30,
                    ) -> tuple[zerocopy.TransferResult | None,
                                                 BaseException | None, bytes, bytes]:
    """One transfer of the shape that must wait once after its first chunk, with poll
    failing *poll_failures* times in a row with EAGAIN: (result, error, sent, got)."""
    data = pattern(4 * CHUNK)
    src_path = scratch / "src"
    src_path.write_bytes(data)
    dst_path = scratch / "dst"
    with contextlib.ExitStack() as stack:
        feeder = None
        if shape == "f2s":
            src: object = stack.enter_context(open(src_path, "rb"))
        else:
            feed, sock_src = tcp_pair()
            stack.enter_context(sock_src)
            feed.sendall(data[:CHUNK])  # the first chunk is there before the first read
            feeder = Writer(feed, data[CHUNK:])  # closes feed when done
            feeder.start()
            sock_src.settimeout(timeout)
            src = sock_src
        if shape == "s2f":
            dst: object = stack.enter_context(open(dst_path, "wb"))
            reader = None
        else:
            out, peer = tcp_pair()
            stack.enter_context(out)
            out.settimeout(timeout)
            reader = Reader(peer)
            reader.start()
            dst = out
        call, first_chunk_calls = _FORCE_WAIT[shape][backend]
        faults.fail(call, errno.EAGAIN, skip=first_chunk_calls)
        faults.fail("poll", errno.EAGAIN, times=poll_failures)
        result = error = None
        try:
            result = zerocopy.transfer(src, dst, chunk_size=CHUNK, backend=backend)
        except BaseException as exc:  # noqa: BLE001 - returned for the test to check
            error = exc
        if feeder is not None:
            if error is None:
                feeder.finish()
            else:  # the rest of the stream stays unread: stop the feeder
                sock_src.close()
                feeder.join(30)
        if reader is not None:
            out.shutdown(socket.SHUT_WR)
            got = reader.result()
            peer.close()
        else:
            stack.close()
            got = dst_path.read_bytes()
    return result, error, data, got


@pytest.mark.parametrize("timeout", [None, 30], ids=["blocking", "timeout"])
@pytest.mark.parametrize("shape", sorted(_FORCE_WAIT))
def test_poll_eagain_is_retried(backend: BackendName, zerocopy_faults: FaultInjector,
                                scratch: Path, shape: str, timeout: float | None) -> None:
    result, error, sent, got = _poll_again_run(backend, zerocopy_faults, shape, scratch, 3,
                                               timeout)
    assert error is None, error
    assert result is not None and result.transferred == len(sent) and got == sent
    assert zerocopy_faults.pending("poll") == 0  # all three failures were met, and survived


@pytest.mark.parametrize("shape", sorted(_FORCE_WAIT))
def test_poll_eagain_without_end_is_raised_not_spun(
        backend: BackendName, zerocopy_faults: FaultInjector, scratch: Path, shape: str) -> None:
    started = time.monotonic()
    result, error, sent, got = _poll_again_run(backend, zerocopy_faults, shape, scratch, 1000)
    assert time.monotonic() - started < 10
    assert isinstance(error, TransferError) and error.errno == errno.EAGAIN, error
    assert error.fallbacks == ()  # a wait's failure, never taken for a method's "can't"
    # Everything delivered before poll gave up arrived, and nothing more (a socket
    # source's first read may return less than a whole chunk).
    assert 0 < error.transferred <= CHUNK and (shape != "f2s" or error.transferred == CHUNK)
    assert got == sent[:error.transferred]
