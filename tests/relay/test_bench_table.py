"""``zerocopy bench relay``'s table: every relay's row, and each zerocopy row judged
against the issue's targets (better of socat-1M and haproxy per column, the lower CPU,
0.8x haproxy's connections per second)."""

from __future__ import annotations

from typing import Any

from zerocopy._cli.bench import relay as bench_relay


def row(gbit: float, cpu: float | None, conn: float) -> dict[str, Any]:
    return {label: {"gbit": gbit, "cpu_s_per_gb": cpu} for label, _ in bench_relay.CASES} | \
        {"conn_s": conn}


def report(zerocopy: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "relay", "cpu": "Test CPU", "reps": 3, "skipped": {}, "errors": [],
            "results": {"direct": row(40.0, None, 20_000), "zerocopy-splice": zerocopy,
                        "socat-1M": row(10.0, 0.5, 2_000), "haproxy": row(8.0, 0.4, 10_000)}}


def test_rows_and_targets_met() -> None:
    text = bench_relay.table(report(row(12.0, 0.3, 9_000)))
    assert "CPU Test CPU" in text
    assert "zerocopy-splice" in text and "direct" in text
    verdict = [line for line in text.splitlines() if "targets zerocopy-splice" in line]
    assert len(verdict) == 1
    assert "MISSED" not in verdict[0]
    assert "-P 1 fwd 1.20x Gbit/s 0.75x CPU met" in verdict[0]
    assert "conn/s 0.90x haproxy met" in verdict[0]


def test_each_missed_target_is_named() -> None:
    text = bench_relay.table(report(row(9.0, 0.45, 7_000)))
    verdict = next(line for line in text.splitlines() if "targets zerocopy-splice" in line)
    assert verdict.count("MISSED") == 4  # three Gbit/s columns and conn/s


def test_without_an_anchor_nothing_is_judged() -> None:
    data = report(row(12.0, 0.3, 9_000))
    del data["results"]["haproxy"]
    data["skipped"] = {"haproxy": "apt install haproxy"}
    text = bench_relay.table(data)
    assert "not judged" in text and "apt install haproxy" in text
