"""The root wall itself, with openat2 and with the O_NOFOLLOW walk (the fallback for
kernels before 5.6), and a file that shrinks while it is sent."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerocopy.http import _resolve
from zerocopy.http._resolve import BadPath, open_beneath, split_path

from .rig import TIMEOUT, running, split_response


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "walk":
        monkeypatch.setattr(_resolve, "_have_openat2", False)
    elif not _resolve._have_openat2:
        pytest.skip("this kernel has no openat2 (Linux < 5.6)")
    yield request.param


@pytest.fixture
def root(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "secret").write_bytes(b"secret")
    inside = tmp_path / "root"
    (inside / "d").mkdir(parents=True)
    (inside / "d" / "f").write_bytes(b"f")
    os.symlink("d/f", inside / "ok")
    os.symlink("../secret", inside / "up")
    os.symlink("/etc/passwd", inside / "abs")
    os.symlink("loop", inside / "loop")
    os.symlink("../../secret", inside / "d" / "deep")
    fd = os.open(inside, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def read(fd: int) -> bytes:
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def test_inside_links_resolve(root: int, resolver: str) -> None:
    assert read(open_beneath(root, ["ok"])) == b"f"
    assert read(open_beneath(root, ["d", "f"])) == b"f"


@pytest.mark.parametrize("name", [["up"], ["abs"], ["d", "deep"], ["loop"]])
def test_links_out_or_looping_are_refused(root: int, resolver: str, name: list[str]) -> None:
    with pytest.raises(OSError) as caught:
        os.close(open_beneath(root, name))
    assert caught.value.errno in (errno.EXDEV, errno.ELOOP)


def test_never_policy_refuses_every_link(root: int, resolver: str) -> None:
    with pytest.raises(OSError):
        os.close(open_beneath(root, ["ok"], "never"))


@pytest.mark.parametrize("raw", [b"/../x", b"/%2e%2e/x", b"/a%2f..%2f..%2fx", b"/a\\b",
                                 b"/a%00b", b"/a%5cb", b"/.hidden"])
def test_split_path_refuses_what_names_no_file(raw: bytes) -> None:
    with pytest.raises(BadPath):
        split_path(raw, hide_dotfiles=True)


def test_split_path_decodes_once_and_collapses_slashes() -> None:
    assert split_path(b"//a/./b%20c//%252e", hide_dotfiles=True) == ["a", "b c", "%2e"]


def test_a_file_that_shrinks_mid_send_ends_the_connection(tmp_path: Path) -> None:
    size = 32 << 20
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(size)
    with running(tmp_path) as server:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.settimeout(TIMEOUT)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            first = sock.recv(4096)
            status, headers, _ = split_response(first)
            assert status == 200 and int(headers["content-length"]) == size
            os.truncate(big, 1 << 20)  # the server is blocked: our buffer is full
            total = len(first)
            while chunk := sock.recv(1 << 20):  # ends: the server closes, never hangs
                total += len(chunk)
        assert total - len(first.partition(b"\r\n\r\n")[0]) - 4 < size
