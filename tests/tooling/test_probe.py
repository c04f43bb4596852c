"""probe() tells the truth about this machine, and the kill switch (ZEROCOPY_DISABLE)
is honoured by probe(), plan() and transfer() in every backend."""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import errno
import fcntl
import json
import os
import socket
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Capabilities, Method, UnsupportedTransfer
from zerocopy._cli import main
from zerocopy._probe import SYSCALL_NAMES, _verdict
from zerocopy.pytest_plugin import FaultInjector, Syscall

from ..support import Reader, Writer, pattern, sha

LINUX = sys.platform.startswith("linux")


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """Forget the cached answers before and after (tests below change what they see)."""
    zerocopy.probe(refresh=True)
    yield
    zerocopy.probe(refresh=True)


# --- what probe() says ---------------------------------------------------------------


def test_probe_is_typed_frozen_and_cached(fresh_probe: None) -> None:
    caps = zerocopy.probe()
    assert isinstance(caps, Capabilities)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.splice = False  # type: ignore[misc]
    assert zerocopy.probe() is caps  # cached
    again = zerocopy.probe(refresh=True)
    assert again is not caps and again == caps  # asked again, same machine
    hash(caps)


def test_probe_matches_the_process(fresh_probe: None) -> None:
    caps = zerocopy.probe()
    assert caps.platform == sys.platform
    if hasattr(os, "uname"):
        assert caps.kernel == os.uname().release
    assert caps.backends == zerocopy.available_backends()
    assert caps.default_backend == caps.backends[0]
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    assert caps.gil == (True if is_gil_enabled is None else is_gil_enabled())
    assert caps.python.startswith(sys.implementation.name)
    assert caps.disabled == frozenset()
    assert caps.methods[-1] is Method.READ_WRITE
    assert set(caps.syscalls()) == set(SYSCALL_NAMES)


@pytest.mark.skipif(not LINUX, reason="pipe sizes are Linux facts")
def test_probe_pipe_sizes_match_the_kernel(fresh_probe: None) -> None:
    caps = zerocopy.probe()
    with open("/proc/sys/fs/pipe-max-size") as f:
        assert caps.pipe_max_size == int(f.read())
    r, w = os.pipe()
    try:
        assert caps.pipe_size == fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    finally:
        os.close(r)
        os.close(w)


def _only(method: Method) -> str:
    """A ZEROCOPY_DISABLE value that leaves *method* the first choice."""
    return ",".join(m.value for m in Method if m not in (method, Method.READ_WRITE))


def _method_shape(method: Method, make_file: Callable[..., Path]) -> zerocopy.TransferResult:
    """Run a transfer that *method* serves (file->file, or file->pipe for splice) and
    check its bytes."""
    data = pattern(300_000)
    src = make_file(data)
    if method is Method.SPLICE:
        r, w = os.pipe()
        reader = Reader(r)
        reader.start()
        with open(src, "rb") as fin:
            result = zerocopy.transfer(fin, w)
        os.close(w)
        assert reader.result() == data
        os.close(r)
        return result
    dst = make_file()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        result = zerocopy.transfer(fin, fout)
    assert sha(dst.read_bytes()) == sha(data)
    return result


@pytest.mark.skipif(not LINUX, reason="these system calls are Linux's")
def test_every_reported_method_works(fresh_probe: None, make_file: Callable[..., Path],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    caps = zerocopy.probe()
    for method in caps.methods:
        monkeypatch.setenv("ZEROCOPY_DISABLE", _only(method))
        result = _method_shape(method, make_file)
        assert (result.method, result.fallbacks) == (method, ()), method


@pytest.mark.skipif(not LINUX, reason="these system calls are Linux's")
def test_reported_syscalls_exist(backend: BackendName, fresh_probe: None,
                                 make_file: Callable[..., Path],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Each system call probe() says is present serves a transfer in each backend
    that has it (the os and native backends share no code for these)."""
    caps = zerocopy.probe()
    offered = {"native": set(Method), "os": set(Method),
               "portable": {Method.READ_WRITE}}[backend]
    with zerocopy.use_backend(backend):
        for name, method in (("sendfile", Method.SENDFILE), ("splice", Method.SPLICE),
                             ("copy_file_range", Method.COPY_FILE_RANGE)):
            if method not in offered or not caps.syscalls()[name]:
                continue
            monkeypatch.setenv("ZEROCOPY_DISABLE", _only(method))
            result = _method_shape(method, make_file)
            assert (result.method, result.backend) == (method, backend)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


@pytest.mark.skipif(not LINUX, reason="tee(2) is Linux's")
def test_reported_tee_duplicates_pipe_bytes(fresh_probe: None) -> None:
    if not zerocopy.probe().tee:
        pytest.skip("probe() says tee is absent")
    libc = _libc()
    libc.tee.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
    libc.tee.restype = ctypes.c_ssize_t
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        os.write(w1, b"teed bytes")
        assert libc.tee(r1, w2, 100, 0) == 10
        assert os.read(r2, 100) == b"teed bytes"
        assert os.read(r1, 100) == b"teed bytes"  # tee does not consume
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


@pytest.mark.skipif(not LINUX, reason="vmsplice(2) is Linux's")
def test_reported_vmsplice_moves_user_memory_into_a_pipe(fresh_probe: None) -> None:
    if not zerocopy.probe().vmsplice:
        pytest.skip("probe() says vmsplice is absent")
    libc = _libc()
    libc.vmsplice.argtypes = [ctypes.c_int, ctypes.POINTER(_Iovec), ctypes.c_ulong,
                              ctypes.c_uint]
    libc.vmsplice.restype = ctypes.c_ssize_t
    buf = ctypes.create_string_buffer(b"from user memory", 16)
    iov = _Iovec(ctypes.cast(buf, ctypes.c_void_p), 16)
    r, w = os.pipe()
    try:
        assert libc.vmsplice(w, ctypes.byref(iov), 1, 0) == 16
        assert os.read(r, 100) == b"from user memory"
    finally:
        os.close(r)
        os.close(w)


def test_verdicts() -> None:
    notes: list[str] = []
    assert _verdict("splice", errno.EBADF, notes) is True
    assert _verdict("splice", errno.ENOSYS, notes) is False
    assert notes == []
    assert _verdict("copy_file_range", errno.EPERM, notes) is False
    assert "seccomp" in notes[-1]
    assert _verdict("tee", -1, notes) is None
    assert _verdict("tee", errno.EINVAL, notes) is None
    assert "EINVAL" in notes[-1]


def test_probe_without_the_core_says_unknown(fresh_probe: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """On top of the real probe: hide the core, and tee/vmsplice (not in ``os``) become
    unknown rather than guessed, while the os module still answers for the rest."""
    real = zerocopy.probe()
    monkeypatch.setitem(sys.modules, "zerocopy._core", None)  # import fails
    monkeypatch.delattr(zerocopy, "_core", raising=False)
    caps = zerocopy.probe(refresh=True)
    assert caps.probed_with == "os module"
    if LINUX:
        assert caps.tee is None and caps.vmsplice is None
        assert any("tee: unknown" in n for n in caps.notes)
    for name in ("sendfile", "splice", "copy_file_range"):
        if hasattr(os, name):
            assert caps.syscalls()[name] == real.syscalls()[name]


@pytest.mark.skipif(not LINUX, reason="the core is built on Linux only")
def test_probe_leaves_no_fd_open(fresh_probe: None) -> None:
    """probe() opens a pipe (to read its size) and /proc: both closed again."""
    before = len(os.listdir("/proc/self/fd"))
    zerocopy.probe(refresh=True)
    assert len(os.listdir("/proc/self/fd")) == before


def test_cli_probe(fresh_probe: None, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROCOPY_DISABLE", "splice")
    assert main(["probe", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    caps = zerocopy.probe()
    assert out["disabled"] == ["splice"] and "splice" not in out["methods"]
    assert out["backends"] == list(caps.backends)
    assert out["splice"] is caps.splice and out["pipe_max_size"] == caps.pipe_max_size
    assert main(["probe"]) == 0
    table = capsys.readouterr().out
    assert "disabled" in table and "splice" in table
    assert f"copy_file_range       {'yes' if caps.copy_file_range else 'no'}" in table


# --- the kill switch ------------------------------------------------------------------


def test_kill_switch_in_probe_and_plan(backend: BackendName, fresh_probe: None,
                                       make_file: Callable[..., Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROCOPY_DISABLE", "sendfile, SPLICE")
    caps = zerocopy.probe()
    assert caps.disabled == {Method.SENDFILE, Method.SPLICE}
    assert Method.SENDFILE not in caps.methods and Method.SPLICE not in caps.methods
    a, b = socket.socketpair()
    with a, b, open(make_file(b"x"), "rb") as src:
        the_plan = zerocopy.plan(src, a, backend=backend)
    assert the_plan.methods == (Method.READ_WRITE,)
    if backend != "portable":
        assert [(s.method, "ZEROCOPY_DISABLE" in s.reason) for s in the_plan.skipped] == [
            (Method.SENDFILE, True), (Method.SPLICE, True)]
    monkeypatch.delenv("ZEROCOPY_DISABLE")
    assert zerocopy.probe().disabled == frozenset()  # re-read, although cached


def test_kill_switch_in_transfer(backend: BackendName, zerocopy_faults: FaultInjector,
                                 make_file: Callable[..., Path],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Disabled methods are never called: a fault armed on each of their system calls
    is still pending after transfers of every shape they would have served."""
    monkeypatch.setenv("ZEROCOPY_DISABLE", "copy_file_range,sendfile,splice")
    kernel_calls: tuple[Syscall, ...] = ("copy_file_range", "sendfile", "splice")
    for name in kernel_calls:
        zerocopy_faults.fail(name, errno.EIO)
    data = pattern(200_000)
    # file -> file
    dst = make_file()
    with open(make_file(data), "rb") as src, open(dst, "wb") as out:
        results = [zerocopy.transfer(src, out, backend=backend)]
    assert dst.read_bytes() == data
    # socket -> socket
    src_w, src_r = socket.socketpair()
    a, b = socket.socketpair()
    writer, reader = Writer(src_w, data), Reader(b)
    writer.start()
    reader.start()
    with src_r, a:
        results.append(zerocopy.transfer(src_r, a, backend=backend))
    writer.finish()
    assert reader.result() == data
    b.close()
    # pipe -> file
    r, w = os.pipe()
    Writer(w, data).start()
    dst2 = make_file()
    with open(dst2, "wb") as out:
        results.append(zerocopy.transfer(r, out, backend=backend))
    os.close(r)
    assert dst2.read_bytes() == data
    assert {(res.method, res.fallbacks) for res in results} == {(Method.READ_WRITE, ())}
    for name in kernel_calls:
        assert zerocopy_faults.pending(name) == 1, name


def test_disabling_everything_leaves_nothing(backend: BackendName, make_file: Callable[..., Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROCOPY_DISABLE", ",".join(m.value for m in Method))
    dst = make_file()
    with open(make_file(b"data"), "rb") as src, open(dst, "wb") as out:
        assert zerocopy.plan(src, out, backend=backend).methods == ()
        with pytest.raises(UnsupportedTransfer):
            zerocopy.transfer(src, out, backend=backend)
        assert src.tell() == 0
    assert dst.read_bytes() == b""


def test_unknown_kill_switch_word_warns(monkeypatch: pytest.MonkeyPatch,
                                        make_file: Callable[..., Path]) -> None:
    monkeypatch.setenv("ZEROCOPY_DISABLE", "sendfile,zerocopy-please")
    with open(make_file(b"x"), "rb") as src, open(make_file(), "wb") as out:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            the_plan = zerocopy.plan(src, out)
    assert any("zerocopy-please" in str(w.message) for w in caught)
    assert Method.SENDFILE not in the_plan.methods
