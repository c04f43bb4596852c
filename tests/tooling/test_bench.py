"""``zerocopy bench`` in tiny modes: the report's structure, and that every method's
bytes were checked (so a method that moves the wrong bytes cannot look fast)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zerocopy._cli import main
from zerocopy._cli.bench import report
from zerocopy._cli.bench import throughput as _bench

from ..support import bench_json
from zerocopy._cli.bench.kit import (
    BenchError,
    Progress,
    Workspace,
    parse_size,
    summarize,
)
from zerocopy._cli.bench.throughput import Case, Ends, Runner

_REPO = Path(__file__).resolve().parents[2]
_C_SOURCE = _REPO / "bench" / "zc_ref.c"
# Every stdlib way the issue names, where it applies to the shape.
_EXPECTED = {
    "f2f": {"shutil.copyfile", "shutil.copyfileobj", "os.sendfile loop", "os.splice loop",
            "os.copy_file_range loop"},
    "f2s": {"socket.sendfile", "shutil.copyfileobj", "os.sendfile loop", "os.splice loop"},
    "s2f": {"shutil.copyfileobj", "os.splice loop"},
    "s2s": {"shutil.copyfileobj", "os.splice loop"},
    "f2p": {"shutil.copyfileobj", "os.sendfile loop", "os.splice loop"},
}


@pytest.fixture(scope="module")
def c_ref(tmp_path_factory: pytest.TempPathFactory) -> str:
    """bench/zc_ref, built from the checkout's source (skipped without a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not _C_SOURCE.exists():
        pytest.skip("no C compiler, or not run from a checkout with bench/zc_ref.c")
    exe = tmp_path_factory.mktemp("zc_ref") / "zc_ref"
    subprocess.run([cc, "-O2", "-o", str(exe), str(_C_SOURCE), "-lpthread"], check=True)
    return str(exe)


def _check_throughput(report: dict[str, Any], size: int, reps: int) -> None:
    assert report["mode"] == "throughput"
    assert report["config"]["size"] == size and report["config"]["reps"] == reps
    results = report["results"]
    for shape in report["config"]["shapes"]:
        methods = {r["method"] for r in results if r["shape"] == shape}
        assert "transfer" in methods and "transfer[portable]" in methods
        assert _EXPECTED[shape] <= methods, shape
    for r in results:
        assert r["errors"] == [], (r["shape"], r["method"], r["errors"])
        assert r["verified"] == {"hash": True, "bytes": True, "runs_checked": reps}, r
        assert r["runs"] == reps and r["bytes"] == size
        assert r["gbps"]["median"] > 0 and r["gbps"]["min"] <= r["gbps"]["max"]
        assert r["cpu_s_per_gb"]["median"] >= 0
        # A peer is involved exactly when a socket or pipe is: its CPU is reported apart.
        assert (r["peer_cpu_s_per_gb"] is None) == (r["shape"] in ("f2f",)), r
    for t in report["targets"]:
        assert set(t) == {"target", "shape", "value", "limit", "iqr", "against", "holds",
                          "clear", "better"}
        assert t["better"] == ("lower" if "<=" in t["target"] else "higher")
        assert t["holds"] == (t["value"] >= t["limit"] if t["better"] == "higher"
                              else t["value"] <= t["limit"])


def test_throughput_every_shape_python_peers(tmp_path: Path) -> None:
    report = bench_json(tmp_path, "--size", "3M", "--reps", "1")
    assert report["config"]["peers"] == "python"
    assert report["config"]["shapes"] == list(_bench.SHAPES)
    _check_throughput(report, 3 << 20, 1)
    assert not any(r["kind"] == "c" for r in report["results"])
    # transfer against the stdlib for every shape; copyfileobj ratios where the issue asks
    named = {(t["shape"], t["target"]) for t in report["targets"]}
    assert ("f2s", "transfer / copyfileobj >= 1.3") in named
    assert ("s2s", "CPU/GB transfer / copyfileobj <= 0.6") in named
    assert {s for s, _ in named} == set(_bench.SHAPES)


def test_throughput_with_c_reference(tmp_path: Path, c_ref: str) -> None:
    report = bench_json(tmp_path, "--size", "2M", "--reps", "2", "--shapes", "f2f,s2s,f2p",
                         "--c-ref", c_ref)
    assert report["config"]["peers"] == "c"
    _check_throughput(report, 2 << 20, 2)
    c_methods = {(r["shape"], r["method"]) for r in report["results"] if r["kind"] == "c"}
    assert c_methods == {("f2f", "C rw"), ("f2f", "C sendfile"), ("f2f", "C splice"),
                         ("f2f", "C cfr"), ("s2s", "C rw"), ("s2s", "C splice"),
                         ("f2p", "C rw"), ("f2p", "C sendfile"), ("f2p", "C splice")}
    assert {t["shape"] for t in report["targets"] if "best C" in t["target"]} == \
        {"f2f", "s2s", "f2p"}


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    ws = Workspace(str(tmp_path))
    r = Runner(ws, 1 << 20, 1 << 20, None, False, Progress(1, False))
    try:
        yield r
    finally:
        r.close()
        ws.close()


def _short_send(e: Ends) -> int:
    assert e.src is not None and e.dst is not None
    return os.sendfile(e.dst.fileno(), e.src.fileno(), 0, (1 << 20) - 1)


def _wrong_bytes(e: Ends) -> int:
    assert isinstance(e.dst, socket.socket)
    e.dst.sendall(b"\0" * (1 << 20))
    return 1 << 20


def test_a_short_transfer_is_caught(runner: Runner) -> None:
    case = Case("f2s", "short", "stdlib", _short_send)
    sample = runner.run(case, verify=False)
    assert "1048575" in sample.error and "not 1048576" in sample.error
    # the failed run's peer line was consumed: the next run reads its own
    good = runner.run(Case("f2s", "transfer", "zerocopy", _bench._transfer(None)), verify=True)
    assert good.error == "" and good.digest_ok is True


def test_wrong_bytes_fail_the_hash(runner: Runner) -> None:
    sample = runner.run(Case("f2s", "zeros", "stdlib", _wrong_bytes), verify=True)
    assert sample.digest_ok is False and "SHA-256" in sample.error


def test_a_short_file_copy_is_caught(runner: Runner) -> None:
    case = Case("f2f", "short", "stdlib", _short_send)
    assert "position is 1048575" in runner.run(case, verify=False).error
    assert runner.run(case, verify=True).digest_ok is False


@pytest.mark.parametrize("mode,args", [
    ("small", ["--reps", "1"]),
    ("memory", ["--size", "16M"]),
    ("gil", ["--size", "8M", "--reps", "1"]),
    ("scaling", ["--size", "4M", "--reps", "1"]),
])
def test_other_modes(tmp_path: Path, mode: str, args: list[str]) -> None:
    report = bench_json(tmp_path, mode, *args)
    assert report["mode"] == mode
    assert report["targets"] and all(t["value"] is not None for t in report["targets"])
    if mode == "small":
        sizes = {(r["size"], r["method"]) for r in report["results"]}
        assert (4096, "os.sendfile") in sizes and (65536, "transfer(int, int)") in sizes
        assert all(r["us_per_call"]["median"] > 0 for r in report["results"])
        assert report["config"]["bytes_checked"] > 0 and report["profile"]["4096"]
    elif mode == "memory":
        assert {r["case"] for r in report["results"]} >= {"file -> null", "socket -> socket"}
        assert all(r["transferred"] == 16 << 20 for r in report["results"])
    elif mode == "gil":
        assert all(r["counter_solo_per_s"]["median"] > 0 for r in report["results"])
    else:
        for curve in ("f2s", "f2s fds", "f2f", "f2f fds"):
            assert [r["size"] for r in report["results"] if r["shape"] == curve] == \
                [1 << 20, 4 << 20]
        assert {(t["shape"], t["workers"]) for t in report["threads"]} == \
            {("f2s", "threads"), ("f2f", "threads")}


def test_c_controls_in_gil_and_scaling(tmp_path: Path, c_ref: str) -> None:
    gil = bench_json(tmp_path, "gil", "--size", "8M", "--reps", "1", "--c-ref", c_ref)
    during_c = {r["case"]: r["kept_during_c"] for r in gil["results"]}
    assert during_c["f2f portable"] is None
    # Measured beside the C loops for every native case (a rate, not asserted: an 8 MiB
    # C run can end between two ticks of the counter on a busy machine).
    assert all(during_c[c]["median"] >= 0 for c in ("f2f native", "f2s native", "s2s native"))
    scaling = bench_json(tmp_path, "scaling", "--size", "2M", "--reps", "1", "--c-ref", c_ref)
    rows = {(t["shape"], t["workers"]): t for t in scaling["threads"]}
    assert set(rows) == {(s, w) for s in ("f2s", "f2f") for w in ("threads", "C")}
    assert all(t["gbps_8"] > 0 for t in rows.values())


def test_plot_without_matplotlib_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    status = main(["bench", "--plot", str(tmp_path / "x.png"), "--dir", str(tmp_path)])
    assert status == 1
    assert "pip install 'zerocopy[bench]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "chart.png"
    bench_json(tmp_path, "--size", "1M", "--reps", "1", "--shapes", "f2p",
                "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_python_m_zerocopy_bench(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "zerocopy", "bench", "--size", "1M",
                          "--reps", "1", "--shapes", "f2f", "--json", "--no-progress"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["shape"] == "f2f"


def test_sizes_and_stats() -> None:
    assert parse_size("4096") == 4096
    assert parse_size("64K") == 64 << 10
    assert parse_size("1GiB") == parse_size("1g") == 1 << 30
    assert parse_size("1.5M") == 3 << 19
    for bad in ("", "x", "-1M", "0"):
        with pytest.raises(BenchError):
            parse_size(bad)
    holds = report.target("x >= 1", "f2s", 1.1, 1.0, iqr=[1.05, 1.2])
    assert holds["holds"] and holds["clear"]
    shaky = report.target("x >= 1", "f2s", 1.1, 1.0, iqr=[0.9, 1.2])
    assert shaky["holds"] and not shaky["clear"]
    missed = report.target("cpu <= 0.6", "s2s", 0.7, 0.6, higher_is_better=False,
                           iqr=[0.65, 0.8])
    assert missed["holds"] is False and missed["clear"]
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"]) == (3.0, 2.0, 4.0, 1.0, 5.0)
