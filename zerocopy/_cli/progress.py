"""A progress bar on stderr, only when stderr is a terminal: the standard library
alone (no extra to install for one line of output), redrawn at most ten times a
second with a carriage return."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``progress(total_done)`` redraws; ``close()`` ends the line.  A no-op when
    the stream is not a terminal (pipes and logs get no bar)."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.label, self.total = label, total
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.done = 0
        self.drawn = False

    def __call__(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.enabled and now - self.last_draw >= 0.1:
            self.last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed / 1e9
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = int(share * 30)
            bar = "#" * filled + "." * (30 - filled)
            text = f"{self.label} [{bar}] {share * 100:5.1f}% {rate:.2f} GB/s"
        else:
            text = f"{self.label} {self.done} bytes {rate:.2f} GB/s"
        self.stream.write("\r" + text)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
