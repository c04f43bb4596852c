"""What every command shares: the one-line error a command raises for bad input."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import Any, BinaryIO

__all__ = ["BACKENDS", "CommandError", "add_loop_option", "add_transfer_options",
           "cannot_open", "check_loop", "open_source", "run_on_loop"]

BACKENDS = ("native", "os", "portable")


class CommandError(Exception):
    """Bad input or an environment problem: ``main`` prints ``zerocopy: <message>``
    on stderr and exits with ``status`` (never a traceback)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def cannot_open(path: str, error: OSError) -> CommandError:
    """The ``cp``-style line for a path that could not be opened."""
    return CommandError(f"cannot open {path!r}: {error.strerror or error}")


def add_loop_option(parser: argparse.ArgumentParser) -> None:
    """``--loop`` of the commands that run an event loop (serve, relay)."""
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="event loop (auto: uvloop when installed)")


def check_loop(args: argparse.Namespace) -> None:
    """Refuse ``--loop uvloop`` up front when uvloop is not installed."""
    if args.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise CommandError("--loop uvloop: uvloop is not installed "
                               "(pip install uvloop)") from None


def run_on_loop(choice: str, main: Coroutine[Any, Any, Any]) -> Any:
    """Run *main* on uvloop (``--loop uvloop``, or ``auto`` when it is installed) or
    on asyncio's own loop.  uvloop's loop does the same callbacks with less Python per
    wake (docs/relay.md measures it)."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass  # auto without uvloop; check_loop refused an explicit uvloop
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def add_transfer_options(parser: argparse.ArgumentParser) -> None:
    """What ``cp`` and ``plan`` both take."""
    parser.add_argument("--count", type=int, metavar="N", help="copy at most N bytes")
    parser.add_argument("--offset", type=int, metavar="K",
                        help="start reading at byte K of SRC")
    parser.add_argument("--append", action="store_true",
                        help="append to DST instead of truncating it")
    parser.add_argument("--backend", choices=BACKENDS, help="force one backend")


def open_source(path: str) -> BinaryIO:
    """*path* opened for reading, or the ``cp``-style error."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise cannot_open(path, exc) from None


def parse_endpoint(text: str, default_host: str | None = None) -> tuple[str, str | int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``PORT`` (with *default_host*) or ``unix:PATH``
    → ``("unix", path)`` or ``(host, port)``; a one-line error otherwise."""
    if text.startswith("unix:"):
        return "unix", text[5:]
    host, sep, port = text.rpartition(":")
    if not sep:
        if default_host is None:
            raise CommandError(f"{text!r}: expected HOST:PORT")
        host, port = default_host, text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CommandError(f"{text!r}: bad port {port!r}")
    return host or (default_host or "0.0.0.0"), int(port)


def rate_line(moved: int, seconds: float) -> str:
    """The last line of ``send`` and ``recv``: bytes, seconds, GB/s."""
    return f"{moved} bytes in {seconds:.3f} s, {moved / max(seconds, 1e-9) / 1e9:.3f} GB/s"
