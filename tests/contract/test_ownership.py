"""fd ownership (docs/ownership.md): OwnedFd closes exactly once, BorrowedFd never does,
and a transfer pins its OwnedFd endpoints so a close from another thread can never
let the fd number be reused under it."""

from __future__ import annotations

import errno
import gc
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, BorrowedFd, Method, OwnedFd, TransferError

from ..support import Reader, pattern, sha


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        assert exc.errno == errno.EBADF
        return False
    return True


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


# --- OwnedFd and BorrowedFd on their own ---------------------------------------------


def test_owned_fd_closes_once(make_file: Callable[..., Path]) -> None:
    fd = os.open(make_file(b"x"), os.O_RDONLY)
    owned = OwnedFd(fd)
    assert owned.fileno() == fd
    assert repr(owned) == f"<zerocopy.OwnedFd fd={fd}>"
    owned.close()
    assert owned.closed and not _is_open(fd)
    assert repr(owned) == "<zerocopy.OwnedFd closed>"
    # A second close must not close whatever now has that number.
    other = os.open(make_file(b"y"), os.O_RDONLY)
    try:
        owned.close()
        assert _is_open(other)
    finally:
        os.close(other)
    with pytest.raises(ValueError, match="closed OwnedFd"):
        owned.fileno()


def test_owned_fd_context_manager_and_classmethods(make_file: Callable[..., Path]) -> None:
    path = make_file(b"hello")
    with OwnedFd.open(path) as owned:
        fd = owned.fileno()
        assert os.read(fd, 5) == b"hello"
        assert not os.get_inheritable(fd)  # os.open: close-on-exec (PEP 446)
    assert not _is_open(fd)
    with open(path, "rb") as f:
        with OwnedFd.dup(f) as dup:
            assert dup.fileno() != f.fileno()
            assert _identity(dup.fileno()) == _identity(f.fileno())
        assert f.read() == b"hello"  # closing the duplicate left the original open


def test_owned_fd_refuses_what_is_not_an_fd() -> None:
    with pytest.raises(TypeError):
        OwnedFd(True)
    with pytest.raises(TypeError):
        OwnedFd("3")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        OwnedFd(-1)


def test_owned_fd_cannot_be_pickled_or_copied(make_file: Callable[..., Path]) -> None:
    import copy

    with OwnedFd.open(make_file()) as owned:
        with pytest.raises(TypeError, match="pickle"):
            pickle.dumps(owned)
        with pytest.raises(TypeError):
            copy.copy(owned)  # two owners would close one fd twice


def test_unclosed_owned_fd_warns_with_its_number(make_file: Callable[..., Path]) -> None:
    fd = os.open(make_file(), os.O_RDONLY)
    owned = OwnedFd(fd)
    with pytest.warns(ResourceWarning, match=f"unclosed <zerocopy.OwnedFd fd={fd}>"):
        del owned
        gc.collect()
    assert not _is_open(fd)


def test_closed_owned_fd_does_not_warn(make_file: Callable[..., Path],
                                       recwarn: pytest.WarningsRecorder) -> None:
    owned = OwnedFd(os.open(make_file(), os.O_RDONLY))
    owned.close()
    del owned
    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]


def test_detach_hands_the_fd_back(make_file: Callable[..., Path]) -> None:
    owned = OwnedFd.open(make_file())
    fd = owned.detach()
    assert owned.closed
    del owned
    gc.collect()
    assert _is_open(fd)  # no longer ours: neither closed nor warned about
    os.close(fd)


def test_borrowed_fd_never_closes(make_file: Callable[..., Path]) -> None:
    fd = os.open(make_file(b"abc"), os.O_RDONLY)
    try:
        with BorrowedFd(fd) as borrowed:
            assert borrowed.fileno() == fd
            assert repr(borrowed) == f"<zerocopy.BorrowedFd fd={fd}>"
        assert borrowed.closed and _is_open(fd)
        with pytest.raises(ValueError, match="released"):
            borrowed.fileno()
        borrowed.close()  # idempotent
        del borrowed
        gc.collect()
        assert _is_open(fd)
    finally:
        os.close(fd)


def test_borrow_follows_its_owner(make_file: Callable[..., Path]) -> None:
    owned = OwnedFd.open(make_file())
    borrowed = owned.borrow()
    assert borrowed.owner is owned and borrowed.fileno() == owned.fileno()
    assert BorrowedFd(borrowed).owner is owned
    owned.close()
    assert borrowed.closed
    with pytest.raises(ValueError):
        borrowed.fileno()
    with pytest.raises(ValueError):
        owned.borrow()


def test_borrowed_socket_reports_closed() -> None:
    a, b = socket.socketpair()
    borrowed = BorrowedFd(a)
    assert not borrowed.closed
    a.close()
    b.close()
    assert borrowed.closed


# --- in transfers --------------------------------------------------------------------


def test_transfer_accepts_owned_and_borrowed(backend: BackendName,
                                             make_file: Callable[..., Path]) -> None:
    data = pattern(200_001)
    src_path, dst_path = make_file(data), make_file()
    with OwnedFd.open(src_path) as src, \
            OwnedFd.open(dst_path, os.O_WRONLY | os.O_TRUNC) as dst:
        first = zerocopy.transfer(src, dst, 100_000, backend=backend)
        rest = zerocopy.transfer(src.borrow(), BorrowedFd(dst), backend=backend)
        # Positions move as for ints: the fds are the caller's, never closed by us.
        assert os.lseek(src.fileno(), 0, os.SEEK_CUR) == len(data)
        assert not src.closed and not dst.closed
        the_plan = zerocopy.plan(src, dst, backend=backend)
        assert the_plan.methods[-1] is Method.READ_WRITE
    assert first.transferred + rest.transferred == len(data)
    assert sha(dst_path.read_bytes()) == sha(data)


def test_transfer_refuses_closed_owner_up_front(make_file: Callable[..., Path]) -> None:
    dst_path = make_file()
    src = OwnedFd.open(make_file(b"data"))
    src.close()
    with open(dst_path, "wb") as dst, pytest.raises(ValueError, match="closed OwnedFd"):
        zerocopy.transfer(src, dst)
    with open(dst_path, "wb") as dst, pytest.raises(ValueError, match="closed OwnedFd"):
        zerocopy.plan(src, dst)
    assert dst_path.read_bytes() == b""


def test_detach_refused_while_a_transfer_pins(backend: BackendName,
                                              make_file: Callable[..., Path]) -> None:
    refused: list[BaseException] = []
    with OwnedFd.open(make_file(pattern(1 << 16))) as src, open(make_file(), "wb") as dst:

        def progress(done: int) -> None:
            try:
                src.detach()
            except RuntimeError as exc:
                refused.append(exc)

        zerocopy.transfer(src, dst, chunk_size=4096, progress=progress, backend=backend)
        assert refused and "in use by 1 transfer" in str(refused[0])
        assert not src.closed


def test_close_during_transfer_is_deferred_and_stops_it(
        backend: BackendName, make_file: Callable[..., Path]) -> None:
    """Closing inside the progress callback (the same thread, so deterministic): the fd
    stays open until the transfer lets go, and the transfer stops after that chunk."""
    data = pattern(1 << 20)
    dst_path = make_file()
    chunk = 1 << 16
    owned = OwnedFd.open(dst_path, os.O_WRONLY)
    fd = owned.fileno()
    seen: list[bool] = []

    def progress(done: int) -> None:
        owned.close()
        seen.append(_is_open(fd))
        assert "closing after 1 transfer" in repr(owned)

    with open(make_file(data), "rb") as src:
        with pytest.raises(TransferError) as info:
            zerocopy.transfer(src, owned, chunk_size=chunk, progress=progress,
                              backend=backend)
        assert src.tell() == info.value.transferred  # positions kept, as for any error
    err = info.value
    assert err.errno == errno.ECANCELED
    assert any("closed by another thread" in n for n in getattr(err, "__notes__", ()))
    assert seen == [True]  # open while the transfer held it ...
    assert not _is_open(fd) and owned.closed  # ... closed once it let go
    assert 0 < err.transferred < len(data)
    assert dst_path.read_bytes() == data[: err.transferred]


def test_deferred_close_of_the_source(backend: BackendName, make_file: Callable[..., Path]) -> None:
    data = pattern(1 << 18)
    owned = OwnedFd.open(make_file(data))
    fd = owned.fileno()
    with open(make_file(), "wb") as dst, pytest.raises(TransferError) as info:
        zerocopy.transfer(owned, dst, chunk_size=1 << 14,
                          progress=lambda done: owned.close(), backend=backend)
    assert info.value.errno == errno.ECANCELED
    assert not _is_open(fd)


def test_failed_deferred_close_is_reported_not_raised(
        make_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The deferred close runs in the transfer's thread after the transfer ended; if
    close(2) fails there (someone closed the number behind the owner's back), the
    transfer's own outcome is kept and the error goes to sys.unraisablehook."""
    reported: list[BaseException | None] = []
    monkeypatch.setattr("sys.unraisablehook", lambda args: reported.append(args.exc_value))
    owned = OwnedFd.open(make_file(), os.O_WRONLY)
    fd = owned.fileno()

    def progress(done: int) -> None:
        os.close(fd)  # the bug this guards against, done on purpose
        owned.close()

    with open(make_file(pattern(1 << 16)), "rb") as src, pytest.raises(TransferError) as info:
        zerocopy.transfer(src, owned, chunk_size=1 << 12, progress=progress, backend="portable")
    assert info.value.errno == errno.ECANCELED
    assert [getattr(e, "errno", None) for e in reported] == [errno.EBADF]
    assert owned.closed


# --- the race: A transfers into an OwnedFd, B closes it, C opens files ------------------


class _Opener(threading.Thread):
    """Thread C: opens new files in a loop, each held open briefly, so that an fd
    number freed under the transfer would be taken by one of them at once."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.directory = directory
        self.stop = threading.Event()
        self.paths: list[Path] = []
        self.numbers: set[int] = set()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            path = self.directory / f"c{n}"
            n += 1
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self.paths.append(path)
            self.numbers.add(fd)
            time.sleep(0.0005)
            os.close(fd)


class _SlowReader(Reader):
    """Reads a pipe or socket slowly, so the transfer is long and blocks often."""

    def run(self) -> None:
        try:
            while data := os.read(self.fd, 1 << 14):
                self.chunks.append(data)
                time.sleep(0.0005)
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self.error = exc


@pytest.mark.parametrize("dst_kind", ["pipe", "socket"])
def test_close_from_another_thread_never_leaks_bytes_into_new_files(
        backend: BackendName, dst_kind: str, scratch: Path,
        make_file: Callable[..., Path]) -> None:
    data = pattern(4 << 20)
    src_path = make_file(data)
    c_dir = scratch / "opened-by-c"
    c_dir.mkdir()
    peer: socket.socket | None = None
    if dst_kind == "pipe":
        r, w = os.pipe()
        read_end = r
        owned = OwnedFd(w)
    else:
        a, peer = socket.socketpair()
        read_end = peer.fileno()
        owned = OwnedFd(a.detach())
    fd = owned.fileno()
    identity = _identity(fd)
    reader = _SlowReader(read_end)
    opener = _Opener(c_dir)
    started = threading.Event()
    outcome: list[object] = []

    def thread_a() -> None:
        try:
            with open(src_path, "rb") as src:
                outcome.append(zerocopy.transfer(src, owned, chunk_size=1 << 15,
                                                 progress=lambda done: started.set(),
                                                 backend=backend))
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    def thread_b() -> None:
        started.wait(30)
        owned.close()

    reader.start()
    opener.start()
    workers = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    opener.stop.set()
    opener.join(10)
    received = reader.result()  # EOF: the write end was closed when the transfer let go
    if dst_kind == "pipe":
        os.close(read_end)
    elif peer is not None:
        peer.close()

    # The transfer ended cleanly: done, or stopped with a clear error and its count.
    (result,) = outcome
    if isinstance(result, TransferError):
        assert result.errno == errno.ECANCELED
        assert result.transferred == len(received)
    else:
        assert isinstance(result, zerocopy.TransferResult)
        assert result.transferred == len(received) == len(data)
    assert received == data[: len(received)]
    # No byte ever landed in a file C opened, though C opened files all along.
    assert opener.paths
    assert all(p.stat().st_size == 0 for p in opener.paths)
    # The fd is closed afterwards: the number is free or names another file.
    assert owned.closed
    try:
        assert _identity(fd) != identity
    except OSError as exc:
        assert exc.errno == errno.EBADF
