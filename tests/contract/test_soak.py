"""The soak's short version (issue 11; ``zerocopy bench soak`` runs 10,000): mixed
shapes, threads and asyncio tasks, a tenth failing on purpose; every byte checked,
the fds flat, the RSS flat, the splice pipe pool bounded (the bench modes themselves:
tests/tooling/test_bench_hardening.py)."""

from __future__ import annotations

from zerocopy import BackendName
from zerocopy._cli.bench.soak import run_soak
from zerocopy._constants import PIPE_POOL_LIMIT


def test_short_soak_is_flat(backend: BackendName) -> None:
    report = run_soak(600, (backend,), threads=4)
    assert report.transfers == 600 and report.wrong == []
    assert any("ok" in k for k in report.outcomes)
    assert sum(v for k, v in report.outcomes.items() if "ok" not in k) > 0  # errors ran
    assert report.fds[1] == report.fds[0], report.fds
    assert report.rss_kib[1] - report.rss_kib[0] < 16 << 10, report.rss_kib  # < 16 MiB
    assert report.pool_max <= PIPE_POOL_LIMIT
