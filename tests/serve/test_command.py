"""``zerocopy serve`` as a process: the first line, signals that drain, bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TIMEOUT = 15.0


@contextmanager
def serve(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen([sys.executable, "-m", "zerocopy", "serve", "--port", "0",
                             "--access-log", "off", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving "), proc.stderr.read() if proc.stderr else line
        yield proc, line.split(" at ")[1].strip()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_first_line_then_signal_drains_to_exit_0(tmp_path: Path, signum: int,
                                                 workers: str) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    with serve(str(tmp_path), "--workers", workers) as (proc, url):
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        with urllib.request.urlopen(url + "a.txt", timeout=TIMEOUT) as reply:
            assert reply.read() == b"abc"
        proc.send_signal(signum)
        assert proc.wait(TIMEOUT) == 0


@pytest.mark.parametrize("args, words", [
    (["/nonexistent-dir"], "not a directory"),
    (["--port", "70000"], "--port"),
    (["--workers", "0"], "--workers"),
    (["--max-connections", "0"], "--max-connections must be at least 1, got 0"),
    (["--min-receive-rate", "-1"], "--min-receive-rate must be at least 0, got -1"),
    (["--grace", "-2"], "--grace must be at least 0, got -2"),
    (["--max-ranges", "0"], "--max-ranges must be at least 1, got 0"),
])
def test_bad_input_is_one_line_and_nonzero(args: list[str], words: str) -> None:
    out = subprocess.run([sys.executable, "-m", "zerocopy", "serve", *args],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zerocopy: ") and words in lines[0]


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with serve(str(tmp_path)) as (_, url):
        port = url.rsplit(":", 1)[1].strip("/")
        out = subprocess.run([sys.executable, "-m", "zerocopy", "serve", str(tmp_path),
                              "--port", port], capture_output=True, text=True,
                             timeout=TIMEOUT)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "cannot listen" in out.stderr


def test_without_the_extra_says_how_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['httptools'] = None; "
            "from zerocopy._cli import main; sys.exit(main(['serve', sys.argv[1]]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert out.returncode == 1
    assert out.stderr == "zerocopy: serve needs httptools: pip install 'zerocopy[serve]'\n"
