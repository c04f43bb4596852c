"""What the benchmark modes share in their reports: where the figures come from, and
the verdict of a target."""

from __future__ import annotations

import os
import platform
from typing import Any

from ... import __version__

__all__ = ["machine", "target", "targets_table"]


def machine() -> dict[str, Any]:
    """Where the figures come from, and how busy the machine was (PSI: the share of the
    last minute in which runnable tasks waited for a CPU; 0 on a quiet machine)."""
    return {"cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "machine": platform.machine(),
            "zerocopy": __version__, "cpu_pressure_avg60": _cpu_pressure()}


def _cpu_pressure() -> float | None:
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
    except OSError:
        return None
    return float(dict(kv.split("=") for kv in some[1:])["avg60"])


def target(name: str, shape: str, value: float | None, limit: float,
           higher_is_better: bool = True, against: str = "",
           iqr: list[float] | None = None) -> dict[str, Any]:
    """One target's verdict: ``holds`` by the median; ``clear`` when the whole
    interquartile range (if any) is on the same side of the limit as the median."""
    def meets(v: float) -> bool:
        return v >= limit if higher_is_better else v <= limit

    holds = None if value is None else meets(value)
    clear = holds is not None and (iqr is None or all(meets(v) == holds for v in iqr))
    return {"target": name, "shape": shape, "value": value, "limit": limit, "iqr": iqr,
            "against": against, "holds": holds, "clear": clear,
            "better": "higher" if higher_is_better else "lower"}


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    """Targets as lines: holds / MISSED, the value and the limit."""
    if not targets:
        return []
    lines = ["targets (holds/MISSED by the median; a ? when the IQR straddles the limit):"]
    for t in targets:
        verdict = {True: "holds", False: "MISSED", None: "n/a"}[t["holds"]]
        verdict = (verdict + ("" if t.get("clear", True) else "?")).ljust(7)
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        against = f" vs {t['against']}" if t.get("against") else ""
        shape = f"{t['shape']:4} " if t.get("shape") else ""
        iqr = f" [{t['iqr'][0]:.2f}-{t['iqr'][1]:.2f}]" if t.get("iqr") else ""
        lines.append(f"  {verdict} {shape}{t['target']}: {value}{iqr}{against}")
    return lines
