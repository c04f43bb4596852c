"""The command line: ``zerocopy COMMAND ...`` (also ``python -m zerocopy``).

One module per command, each with ``NAME``, ``ALIASES``, ``HELP`` (a plain-words line
for ``--help``), ``add_arguments(parser)`` and ``run(args) -> int``; the benchmark is
the sub-package ``bench``.  ``common`` holds what they share.  This module builds the
parser and applies the one error policy: bad input or a failed transfer prints one
line, ``zerocopy: <what went wrong>``, on stderr and exits non-zero; never a traceback.

May import the public ``zerocopy`` API (and ``zerocopy._probe`` for ``probe``);
nothing in the library imports this package.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import ModuleType

from .common import CommandError

__all__ = ["main"]

_COMMANDS = ("cp", "plan", "send", "recv", "serve", "relay", "probe", "demo", "bench")
_DESCRIPTION = ("Move bytes between files, sockets and pipes with the fewest copies the "
                "kernel allows, and say how.")


def _load(name: str) -> ModuleType:
    import importlib

    return importlib.import_module(f".{name}", __name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zerocopy", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")
    for module in map(_load, _COMMANDS):
        p = sub.add_parser(module.NAME, aliases=module.ALIASES, help=module.HELP,
                           description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except CommandError as exc:
        return _fail(str(exc), exc.status)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # stdout closed early (| head): exit quietly, as CPython's json.tool does.
        _quiet_stdout()
        return 1
    except (OSError, ValueError) as exc:
        return _fail(str(exc), 1)
    return status


def _fail(message: str, status: int) -> int:
    print(f"zerocopy: {message}", file=sys.stderr)
    return status


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
