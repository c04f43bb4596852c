"""Charts for ``zerocopy bench --plot`` (matplotlib: the optional extra ``bench``)."""

from __future__ import annotations

from typing import Any

from .kit import BenchError, format_size

__all__ = ["plot", "require_matplotlib"]

_COLOURS = {"zerocopy": "#1f77b4", "stdlib": "#ff7f0e", "c": "#2ca02c"}
# not the method colours above: these lines are all transfer()
_CURVES = {"f2s": "#9467bd", "f2f": "#8c564b"}
_SHAPE_NAMES = {"f2f": "file → file", "f2s": "file → socket", "s2f": "socket → file",
                "s2s": "socket → socket", "f2p": "file → pipe"}


def require_matplotlib() -> None:
    """Fail early, before a long run, when the chart cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError("--plot needs matplotlib: pip install 'zerocopy[bench]' "
                         "(or pip install matplotlib)") from None


def plot(reports: dict[str, dict[str, Any]], path: str) -> None:
    """Draw the throughput chart (GB/s and CPU s/GB per shape) and, when measured, the
    scaling one, into *path*."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows: list[tuple[str, list[str]]] = []
    if "throughput" in reports:
        shapes = list(dict.fromkeys(r["shape"] for r in reports["throughput"]["results"]))
        rows += [("gbps", shapes), ("cpu_s_per_gb", shapes)]
    if "scaling" in reports:
        rows.append(("scaling", ["sizes", "threads"]))
    if not rows:
        raise BenchError("--plot draws the throughput and scaling modes")
    ncols = max(len(cells) for _, cells in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(4.3 * ncols, 4.6 * len(rows)),
                             squeeze=False)
    for i, (what, cells) in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(cells):
                ax.axis("off")
            elif what == "scaling":
                (_scaling_panel if cells[j] == "sizes" else _threads_panel)(
                    ax, reports["scaling"])
            else:
                _throughput_panel(ax, reports["throughput"], cells[j], what)
    title = "zerocopy bench"
    if "throughput" in reports:
        cfg = reports["throughput"]["config"]
        title += (f": {format_size(cfg['size'])} per run, medians of {cfg['reps']} "
                  f"interleaved runs, bars: interquartile range; {cfg['peers']} zero-copy "
                  f"peers; {cfg['cpus']} CPUs, Linux {cfg['kernel']}, Python {cfg['python']}")
    fig.suptitle(title, fontsize=10)
    fig.legend(handles=[Patch(color=c, label=k) for k, c in _COLOURS.items()],
               loc="upper right", fontsize=8, title="method", title_fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.97, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _throughput_panel(ax: Any, report: dict[str, Any], shape: str, metric: str) -> None:
    rows = [r for r in report["results"] if r["shape"] == shape and r[metric]]
    rows.sort(key=lambda r: r["gbps"]["median"] if r["gbps"] else 0)
    names = [r["method"] for r in rows]
    med = [r[metric]["median"] for r in rows]
    lo = [r[metric]["median"] - r[metric]["q1"] for r in rows]
    hi = [r[metric]["q3"] - r[metric]["median"] for r in rows]
    bars = ax.barh(names, med, xerr=[lo, hi], color=[_COLOURS[r["kind"]] for r in rows],
                   capsize=2, error_kw={"elinewidth": 0.8})
    for bar, r in zip(bars, rows):
        if r["method"] == "transfer":
            bar.set_edgecolor("black")
            bar.set_linewidth(1.5)
    top = max((r[metric]["q3"] for r in rows), default=1.0)
    for y, r in enumerate(rows):
        ax.text(r[metric]["q3"] + top * 0.02, y, f"{r[metric]['median']:.2f}",
                va="center", fontsize=7)
    ax.set_xlim(0, top * 1.18)
    ax.set_title(_SHAPE_NAMES.get(shape, shape), fontsize=10)
    ax.set_xlabel("GB/s (higher is better)" if metric == "gbps"
                  else "CPU s per GB, measuring process (lower is better)", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    for label in ax.get_yticklabels():
        if label.get_text() == "transfer":
            label.set_fontweight("bold")


def _scaling_panel(ax: Any, report: dict[str, Any]) -> None:
    sizes = report["config"]["sizes"]
    for shape in dict.fromkeys(r["shape"] for r in report["results"]):
        pts = [r for r in report["results"] if r["shape"] == shape]
        base, _, fds = shape.partition(" ")
        label = _SHAPE_NAMES.get(base, base) + (", int fds" if fds else ", file objects")
        ax.plot([r["size"] for r in pts], [r["gbps"] for r in pts], marker="o",
                linestyle="--" if fds else "-", label=label,
                color=_CURVES.get(base, "#7f7f7f"), alpha=0.6 if fds else 1.0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [format_size(s) for s in sizes], fontsize=7)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("bytes per transfer() call", fontsize=8)
    ax.set_ylabel("GB/s", fontsize=8)
    ax.set_title("scaling: transfer() GB/s per size", fontsize=10)
    ax.legend(fontsize=8)


def _threads_panel(ax: Any, report: dict[str, Any]) -> None:
    rows = report["threads"]
    labels, values, colours = [], [], []
    for t in rows:
        kind = "zerocopy" if t["workers"] == "threads" else "c"
        name = "transfer() threads" if t["workers"] == "threads" else "C processes"
        for k in (1, 8):
            labels.append(f"{t['shape']} {name}: {k}")
            values.append(t[f"gbps_{k}"])
            colours.append(_COLOURS[kind] if k == 8 else "#bbbbbb")
    ax.barh(labels, values, color=colours)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=7)
    ax.set_title(f"concurrency: {format_size(report['config']['thread_bytes'])} split "
                 "between 1 or 8 workers", fontsize=10)
    ax.set_xlabel("aggregate GB/s", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
