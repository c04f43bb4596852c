"""``zerocopy probe``: what this platform and process can do."""

from __future__ import annotations

import argparse
import json

from .._probe import as_dict, probe

__all__ = ["ALIASES", "HELP", "NAME", "add_arguments", "run"]

NAME = "probe"
ALIASES: tuple[str, ...] = ()
HELP = "show which system calls, backends and methods work here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy probe``."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """``zerocopy probe``."""

    caps = probe(refresh=True)
    if args.json:
        print(json.dumps(as_dict(caps), indent=2))
        return 0
    answer = {True: "yes", False: "no", None: "unknown"}
    rows = [("platform", f"{caps.platform} {caps.kernel}".strip()),
            ("python", f"{caps.python} ({'GIL' if caps.gil else 'no GIL'})")]
    rows += [(name, answer[present]) for name, present in caps.syscalls().items()]
    rows += [("syscalls probed with", caps.probed_with),
             ("pipe size", str(caps.pipe_size)),
             ("pipe max size", str(caps.pipe_max_size)),
             ("backends", ", ".join(caps.backends) or "none"),
             ("default backend", caps.default_backend or "none"),
             ("disabled", ", ".join(sorted(m.value for m in caps.disabled)) or "none"),
             ("methods", ", ".join(m.value for m in caps.methods) or "none")]
    rows += [(f"{name} backend", f"unavailable: {why}") for name, why in caps.unavailable]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:{width}}  {value}")
    for note in caps.notes:
        print(f"note: {note}")
    return 0
