"""The ``zerocopy`` commands: what they print, what they leave behind, and how they
fail (one line on stderr, a non-zero exit, never a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from zerocopy import BackendName
from zerocopy._cli import main

from ..support import pattern, sha

Make = Callable[..., Path]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command line in-process: (status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_help_lists_every_command_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("cp", "plan", "probe", "demo", "bench"):
        assert f"    {command} " in out
    assert "``" not in out and ":mod:" not in out and ":func:" not in out


@pytest.mark.parametrize("command", ["cp", "copy"])
def test_copy_moves_the_bytes_and_says_how(backend: BackendName, command: str, make_file: Make,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = pattern(300_001)
    src, dst = make_file(data), make_file(b"old contents, longer than nothing" * 50_000)
    status, out, err = run_cli(capsys, command, str(src), str(dst), "--backend", backend)
    assert status == 0 and err == ""
    assert sha(dst.read_bytes()) == sha(data)  # truncated first, then written
    expected = "read_write" if backend == "portable" else "copy_file_range"
    assert out.startswith(f"300001 bytes by {expected} ({backend} backend, eof=True)")


def test_copy_count_offset_and_append(make_file: Make, capsys: pytest.CaptureFixture[str]) -> None:
    data = pattern(10_000)
    src, dst = make_file(data), make_file(b"head:")
    status, out, _ = run_cli(capsys, "copy", str(src), str(dst), "--count", "100",
                             "--offset", "50", "--append")
    assert status == 0 and out.startswith("100 bytes by ")
    assert dst.read_bytes() == b"head:" + data[50:150]


@pytest.mark.parametrize("command", ["cp", "copy"])
@pytest.mark.parametrize("which", ["missing", "directory"])
def test_copy_unopenable_source_is_one_line(which: str, command: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "MISSING" if which == "missing" else tmp_path
    dst = tmp_path / "x"
    status, out, err = run_cli(capsys, command, str(src), str(dst))
    if which == "missing":
        line = f"cannot open {str(src)!r}: No such file or directory"
    else:  # cp: a directory without -r is omitted, exit 1
        line = f"-r not specified; omitting directory {str(src)!r}"
    assert (status, out, err) == (1, "", f"zerocopy: {line}\n")
    assert not dst.exists()


@pytest.mark.parametrize("command", ["cp", "copy"])
def test_copy_into_a_directory_lands_inside_like_cp(command: str, make_file: Make,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = make_file(b"x")
    into = tmp_path / "into"
    into.mkdir()
    status, _, err = run_cli(capsys, command, str(src), str(into))
    assert (status, err) == (0, "") and (into / src.name).read_bytes() == b"x"


def test_copy_negative_count_is_refused(make_file: Make, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = make_file(b"abc"), make_file(b"keep")
    status, _, err = run_cli(capsys, "copy", str(src), str(dst), "--count", "-1")
    assert status == 1 and err.startswith("zerocopy: ") and err.count("\n") == 1
    assert dst.read_bytes() == b"keep"


def _plan_lines(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines()[1:] if line.strip().startswith("try")]


@pytest.mark.parametrize("append", [False, True], ids=["truncate", "append"])
def test_plan_is_the_plan_copy_runs_and_leaves_dst_alone(
        append: bool, make_file: Make, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_file(pattern(5000))
    dst = make_file(b"untouched")
    before = os.stat(dst)
    flag = ["--append"] if append else []
    status, out, _ = run_cli(capsys, "plan", str(src), str(dst), *flag)
    assert status == 0 and out.startswith("file -> file with the native backend:")
    after = os.stat(dst)
    assert dst.read_bytes() == b"untouched"
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    planned = _plan_lines(out)
    status, out, _ = run_cli(capsys, "copy", str(src), str(dst), *flag)
    assert status == 0 and out.split()[3] == planned[0]  # "N bytes by METHOD (...)"
    if not append:
        # O_APPEND would have ruled copy_file_range out: the plan must not open DST so.
        assert planned[0] == "copy_file_range"


def test_plan_of_a_missing_dst_creates_nothing(make_file: Make, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = make_file(b"abc")
    dst = tmp_path / "new"
    before = sorted(os.listdir(tmp_path))
    status, out, _ = run_cli(capsys, "plan", str(src), str(dst))
    assert status == 0 and _plan_lines(out)[0] == "copy_file_range"
    assert sorted(os.listdir(tmp_path)) == before


def test_plan_errors_are_one_line(tmp_path: Path, make_file: Make,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "plan", str(tmp_path / "nope"), str(tmp_path / "x"))
    assert status == 1 and err.endswith(": No such file or directory\n")
    src = make_file(b"abc")
    status, _, err = run_cli(capsys, "plan", str(src), str(tmp_path / "no" / "such" / "dir"))
    assert status == 1 and err.count("\n") == 1 and err.startswith("zerocopy: cannot open")


def test_probe_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "probe")
    assert status == 0
    labels = {line.split("  ")[0] for line in out.splitlines()}
    assert {"platform", "default backend", "methods", "pipe size"} <= labels
    status, out, _ = run_cli(capsys, "probe", "--json")
    report = json.loads(out)
    assert status == 0 and report["default_backend"] in report["backends"]


def test_demo_checks_every_shape(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "demo", "--size", "64K")
    assert status == 0
    results = [line for line in out.splitlines() if " -> " in line]
    assert len(results) == 4 and all(" ok " in line for line in results), out


def test_bad_numbers_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--size", "lots"])
    assert info.value.code == 2
    assert "not a size" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["copy", "/nonexistent/zerocopy-MISSING", "/nonexistent/x"],
    ["plan", "/", "/nonexistent/x"],
    ["bench", "--reps", "0"],
])
def test_no_traceback_from_the_real_program(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "zerocopy", *argv], capture_output=True,
                          text=True, timeout=60, cwd="/")
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("zerocopy: ") and done.stderr.count("\n") == 1, done.stderr
