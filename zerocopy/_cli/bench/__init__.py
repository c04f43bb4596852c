"""``zerocopy bench``: the benchmark, a sub-package of the command line.

* ``throughput``: every shape and method, interleaved, beside the stdlib and the C loops;
* ``modes``: the other modes (``small``, ``memory``, ``gil``, ``scaling``);
* ``report``: what the modes share (the machine, a target's verdict);
* ``kit``: workspaces, loopback peers, statistics, the step progress bar;
* ``peer``: the Python loopback peers (run as a separate process);
* ``plot``: the chart (matplotlib, the ``bench`` extra);
* this module: the ``bench`` command itself.

May import the public ``zerocopy`` API and ``zerocopy._cli.common``; nothing in the
library imports this package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..common import CommandError
from .kit import size_argument
from .throughput import SHAPES

__all__ = ["ALIASES", "DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]


NAME = "bench"
ALIASES: tuple[str, ...] = ()
HELP = "measure transfer() beside the standard library and the C limit"
DESCRIPTION = ("Measure transfer() beside the standard library's best ways and, with "
               "--c-ref, the kernel's own loops in C (docs/performance.md).")
MODES = ("throughput", "small", "memory", "gil", "scaling", "http", "relay", "soak", "storm",
         "signals", "all")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy bench``."""
    p.add_argument("mode", nargs="?", default="throughput", choices=MODES,
                   help="throughput (default): every shape and method; small: per-call cost "
                        "of small transfers; memory: peak RSS growth; gil: a Python thread's "
                        "rate during a transfer; scaling: GB/s per size and 8 threads; soak: "
                        "10000 mixed transfers, fds and RSS flat (--reps); storm: SIGALRM "
                        "every ms during 1G (--size); signals: the signal window per shape; all")
    p.add_argument("--quick", action="store_true", help="small sizes, few repetitions")
    p.add_argument("--size", type=size_argument,
                   help="bytes per run: throughput 1G (quick 64M), memory 8G (1G), gil 1G "
                        "(128M); scaling: the largest size, 4G (64M); small: unused")
    p.add_argument("--reps", type=int,
                   help="repetitions (default 11, quick 3; the other modes: 5-15, quick 3-5)")
    p.add_argument("--shapes", help=f"comma-separated subset of {','.join(SHAPES)}")
    p.add_argument("--c-ref", metavar="PATH",
                   help="the built bench/zc_ref: C loops beside transfer, and C peers")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the report as JSON to FILE, or to stdout instead of the table")
    p.add_argument("--plot", metavar="FILE.png", help="draw a chart (needs matplotlib)")
    p.add_argument("--dir", help="where the files go (default: a new directory in /dev/shm)")
    p.add_argument("--fresh-dst", action="store_true",
                   help="create each destination file anew instead of overwriting one")
    p.add_argument("--seed", type=int, default=1, help="seed of the interleaving order")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--progress", action="store_true", help="a progress bar even off a terminal")


def _check_args(args: argparse.Namespace) -> None:
    if args.c_ref is not None:
        args.c_ref = os.path.abspath(args.c_ref)
        if not os.access(args.c_ref, os.X_OK):
            raise CommandError(f"--c-ref {args.c_ref}: not an executable; build it with "
                             "cc -O2 -o bench/zc_ref bench/zc_ref.c -lpthread")
    if args.reps is not None and args.reps < 1:
        raise CommandError("--reps must be at least 1")
    if args.plot is not None:
        from .plot import require_matplotlib

        require_matplotlib()
    if sys.platform != "linux":
        raise CommandError("the benchmark measures Linux system calls; it runs on Linux only")


def run(args: argparse.Namespace) -> int:
    """``zerocopy bench``: run the mode, print the table or JSON, draw the chart."""
    _check_args(args)
    from . import modes as other_modes
    from .kit import Progress
    from .throughput import measure, throughput_table

    enabled = False if args.no_progress else (True if args.progress else None)
    modes = ("throughput", "small", "memory", "gil", "scaling") if args.mode == "all" \
        else (args.mode,)
    reports: dict[str, dict[str, Any]] = {}
    for mode in modes:
        progress = Progress(1, enabled)
        try:
            if mode == "throughput":
                reports[mode] = measure(args, progress)
            else:
                reports[mode] = other_modes.MODES[mode](args, progress)
        finally:
            progress.close()
        if args.json != "-":
            text = (throughput_table(reports[mode]) if mode == "throughput"
                    else other_modes.TABLES[mode](reports[mode]))
            print(text + ("\n" if len(modes) > 1 else ""), flush=True)
    report: dict[str, Any] = reports[modes[0]] if len(modes) == 1 else \
        {"mode": "all", "reports": reports}
    if args.json is not None:
        text = json.dumps(report, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    if args.plot is not None:
        from .plot import plot

        plot(reports, args.plot)
    failed = any(r["errors"] or not r["verified"]["hash"]
                 for r in reports.get("throughput", {}).get("results", []))
    return 1 if failed else 0
