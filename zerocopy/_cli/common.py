"""What every command shares: the one-line error a command raises for bad input."""

from __future__ import annotations

__all__ = ["CommandError", "cannot_open"]


class CommandError(Exception):
    """Bad input or an environment problem: ``main`` prints ``zerocopy: <message>``
    on stderr and exits with ``status`` (never a traceback)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def cannot_open(path: str, error: OSError) -> CommandError:
    """The ``cp``-style line for a path that could not be opened."""
    return CommandError(f"cannot open {path!r}: {error.strerror or error}")
