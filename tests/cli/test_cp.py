"""``zerocopy cp``: trees, -p, several sources, a sparse file over 4 GiB, and the
progress bar only on a terminal."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from zerocopy._cli import main

SPARSE_SIZE = (4 << 30) + 12345


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_tree_with_r_and_p(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a").write_bytes(b"alpha" * 1000)
    (src / "sub" / "b").write_bytes(b"")
    (src / "sub" / "deeper" / "c").write_bytes(os.urandom(70_000))
    os.chmod(src / "a", 0o640)
    os.utime(src / "a", ns=(1_000_000_000, 2_000_000_123))
    (src / "link").symlink_to("a")
    status, _, err = run_cli(capsys, "cp", "-r", "-p", str(src), str(tmp_path / "dst"))
    assert (status, err) == (0, "")
    for rel in ("a", "sub/b", "sub/deeper/c"):
        assert (tmp_path / "dst" / rel).read_bytes() == (src / rel).read_bytes()
    st = os.stat(tmp_path / "dst" / "a")
    assert (st.st_mode & 0o777, st.st_mtime_ns) == (0o640, 2_000_000_123)
    assert os.readlink(tmp_path / "dst" / "link") == "a"


def test_several_sources_need_a_directory(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    one, two = tmp_path / "1", tmp_path / "2"
    one.write_bytes(b"1")
    two.write_bytes(b"2")
    status, _, err = run_cli(capsys, "cp", str(one), str(two), str(tmp_path / "nodir"))
    assert status == 1 and err == f"zerocopy: target {str(tmp_path / 'nodir')!r} is not a directory\n"
    (tmp_path / "d").mkdir()
    status, _, err = run_cli(capsys, "cp", str(one), str(tmp_path / "gone"), str(two),
                             str(tmp_path / "d"))
    assert status == 1 and "gone" in err and err.count("\n") == 1  # the others still copy
    assert (tmp_path / "d" / "1").read_bytes() == b"1" and (tmp_path / "d" / "2").read_bytes() == b"2"


def chunked_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")
def test_sparse_file_over_4_gib(capsys: pytest.CaptureFixture[str]) -> None:
    base = Path("/dev/shm") / f"zerocopy-cp-{os.getpid()}"
    src, dst = base.with_suffix(".src"), base.with_suffix(".dst")
    try:
        with open(src, "wb") as f:
            f.write(b"head")
            f.seek(1 << 32)  # data just past the 32-bit boundary
            f.write(os.urandom(1 << 20))
            f.truncate(SPARSE_SIZE)
        status, _, err = run_cli(capsys, "cp", str(src), str(dst))
        assert (status, err) == (0, "")
        assert os.path.getsize(dst) == SPARSE_SIZE
        assert os.stat(dst).st_blocks * 512 < 64 << 20  # holes kept
        done = subprocess.run(["cmp", str(src), str(dst)], capture_output=True, timeout=60)
        assert done.returncode == 0, done.stdout
    finally:
        for p in (src, dst):
            p.unlink(missing_ok=True)


def test_progress_only_on_a_terminal(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(8 << 20))
    argv = [sys.executable, "-m", "zerocopy", "cp", str(src), str(dst)]
    piped = subprocess.run(argv, capture_output=True, timeout=30, text=True)
    assert piped.returncode == 0 and piped.stderr == ""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        assert ready, "no output on the pty within 30 s"
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(30) == 0
    os.close(leader)
    assert b"100.0%" in seen and b"GB/s" in seen and b"src [" in seen
