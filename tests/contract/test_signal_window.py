"""The signal window (issue 11; docs/hardening.md, "The signal window"): while bytes
move and no call blocks, a signal's Python handler runs within PYTHON_EVERY (50 ms) of
its arrival, whatever the shape.  Measured at length by ``zerocopy bench signals``;
here one 256 MiB transfer per shape, long enough that a window without a bound would
show: no handler would run before the transfer ended.  A loaded runner adds its
scheduler's delay on top: the median may pass the bound by a tick or two, a single
delay by more."""

from __future__ import annotations

import statistics

import pytest

from zerocopy import BackendName
from zerocopy._cli.bench.soak import signal_window
from zerocopy._constants import PYTHON_EVERY

TICKS = 0.025  # the median's slack: a couple of scheduler ticks on a busy 2-core runner
SLACK = 0.2  # any one signal's: a loaded runner delays the main thread by that much


@pytest.mark.parametrize("shape", ["file->file", "file->socket", "socket->file"])
def test_signal_window_is_bounded(backend: BackendName, shape: str) -> None:
    window = signal_window(shape, backend, 256 << 20)
    delays = sorted(window.delays)
    assert window.during >= 1, f"no handler ran while bytes moved: {delays}"
    assert statistics.median(delays) <= PYTHON_EVERY + TICKS, delays
    assert delays[-1] < PYTHON_EVERY + SLACK, delays[-5:]
