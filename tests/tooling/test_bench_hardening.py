"""``zerocopy bench soak``, ``storm`` and ``signals`` (issue 11), each once and small,
through the command line: the report's shape, the machine it names, nothing wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..support import bench_json


@pytest.mark.parametrize("mode,args", [
    ("soak", ["--reps", "200"]),
    ("storm", ["--size", "8M", "--reps", "2"]),
    ("signals", ["--size", "16M", "--reps", "1"]),
])
def test_hardening_modes(tmp_path: Path, mode: str, args: list[str]) -> None:
    report = bench_json(tmp_path, mode, *args)
    assert report["mode"] == mode and report["errors"] == []
    assert report["machine"]["cpu_model"]  # figures say where they come from
    if mode == "soak":
        assert report["transfers"] == 200 and report["wrong"] == []
        assert report["fds"]["after"] == report["fds"]["before"]
    elif mode == "storm":
        results = report["results"]
        assert results and all(r["hash_ok"] and r["reps"] == 2 for r in results)
    else:
        assert {r["shape"] for r in report["results"]} == {"file->file", "file->socket",
                                                          "socket->file"}
