"""The signal window (issue 11): while bytes move and no call blocks, a signal's Python
handler runs within PYTHON_EVERY (50 ms) of its arrival, whatever the shape.  Measured
at length by ``zerocopy bench signals``; here a short run with slack for a busy CI."""

from __future__ import annotations

import pytest

from zerocopy import BackendName
from zerocopy._cli.bench.soak import signal_window
from zerocopy._constants import PYTHON_EVERY

SLACK = 0.2  # seconds on top of the bound: a loaded 2-core runner delays threads too


@pytest.mark.parametrize("shape", ["file->file", "file->socket", "socket->file"])
def test_signal_window_is_bounded(backend: BackendName, shape: str) -> None:
    delays = signal_window(shape, backend, 96 << 20)
    assert delays, "no signal landed during the transfer"
    assert max(delays) < PYTHON_EVERY + SLACK, sorted(delays)[-5:]
