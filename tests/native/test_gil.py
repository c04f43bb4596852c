"""The native core releases the GIL around its system calls.

A pure-Python thread counts while a large native transfer runs in the main thread.
If the core held the GIL for the whole call, the counter could not run between the
call's start and end: its timestamps would leave a gap as long as the transfer.  The
transfers are sized at run time to last a few tenths of a second on this machine
(sparse tmpfs files cost nothing), so the test does not depend on its speed.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Method

from ..support import tcp_pair

TARGET = 0.3  # seconds a measured transfer should last without contention
MAX_SIZE = 1 << 40


@pytest.fixture
def sparse(scratch: Path) -> Iterator[Callable[[int], int]]:
    """Open a sparse file of the given size for reading; returns its fd."""
    fds: list[int] = []

    def make(size: int) -> int:
        path = scratch / f"sparse{len(fds)}"
        with open(path, "wb") as f:
            f.truncate(size)
        fds.append(os.open(path, os.O_RDONLY))
        return fds[-1]

    yield make
    for fd in fds:
        os.close(fd)


def _sized(run: Callable[[int], zerocopy.TransferResult]) -> int:
    """A size for which *run* lasts about TARGET seconds (calibrated on 1 GiB)."""
    size = 1 << 30
    started = time.perf_counter()
    run(size)
    elapsed = max(time.perf_counter() - started, 1e-4)
    return min(MAX_SIZE, max(size, int(size * TARGET / elapsed)))


class Counter(threading.Thread):
    """Notes the time about every millisecond, in pure Python.

    It sleeps in between, so it takes the GIL only briefly and the transfer never
    waits a switch interval to get it back after a system call; but it cannot wake
    up from a sleep while another thread holds the GIL.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stamps: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        stamps = self.stamps
        while not self.stop.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)


def _counter_progress(run: Callable[[], object]) -> tuple[list[int], float]:
    """Run *run* with a counter thread; return how many counter stamps fell in each
    quarter of the call, and how long it lasted."""
    counter = Counter()
    counter.start()
    time.sleep(0.02)  # the counter is running and holds the GIL in turns
    started = time.perf_counter()
    run()
    ended = time.perf_counter()
    counter.stop.set()
    counter.join()
    quarter = (ended - started) / 4
    buckets = [0, 0, 0, 0]
    for stamp in counter.stamps:
        if started <= stamp < ended:
            buckets[min(3, int((stamp - started) / quarter))] += 1
    return buckets, ended - started


def test_detector_sees_a_gil_holding_call() -> None:
    """The control: a C call that keeps the GIL (summing a range) leaves the middle empty."""
    buckets, elapsed = _counter_progress(lambda: sum(range(15_000_000)))
    if elapsed <= 0.06:
        pytest.skip("this machine sums too fast to tell")
    assert buckets[1] == buckets[2] == 0, buckets


def _assert_released(buckets: list[int], elapsed: float) -> None:
    # Holding the GIL for the whole call leaves at most a switch interval (5 ms) of
    # counting at its start; the two middle quarters would be empty.
    assert elapsed > 0.06, f"the transfer took {elapsed:.3f}s: too short to tell"
    assert buckets[1] > 0 and buckets[2] > 0, (
        f"the counter was stopped during the transfer ({buckets} stamps per quarter "
        f"of {elapsed:.3f}s): the core held the GIL")


def _measure(transfer_size: Callable[[int], zerocopy.TransferResult],
             method: Method) -> None:
    """Size the transfer, run it beside the counter, check it and the counter."""
    size = _sized(transfer_size)
    # A core that holds the GIL empties the middle quarters every time; a machine too
    # busy to schedule the counter does so only now and then.  So a run that shows
    # the counter going on settles it, and only three empty runs in a row fail.
    for attempt in range(3):
        results: list[zerocopy.TransferResult] = []
        buckets, elapsed = _counter_progress(lambda: results.append(transfer_size(size)))
        assert results[0].method is method and results[0].transferred == size
        if attempt == 2 or (elapsed > 0.06 and buckets[1] > 0 and buckets[2] > 0):
            break
    _assert_released(buckets, elapsed)


def _native_only(backend: BackendName) -> None:
    if backend != "native":
        pytest.skip("only the native core claims to release the GIL in its loops")


def test_sendfile_releases_the_gil(backend: BackendName, sparse: Callable[[int], int]) -> None:
    _native_only(backend)
    with open(os.devnull, "wb") as null:
        _measure(lambda size: zerocopy.transfer(sparse(size), null, backend=backend),
                 Method.SENDFILE)


def test_read_write_releases_the_gil(backend: BackendName, sparse: Callable[[int], int],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _native_only(backend)
    monkeypatch.setenv("ZEROCOPY_DISABLE", "sendfile")
    with open(os.devnull, "wb") as null:
        _measure(lambda size: zerocopy.transfer(sparse(size), null, backend=backend),
                 Method.READ_WRITE)


def test_fast_path_releases_the_gil(backend: BackendName, sparse: Callable[[int], int]) -> None:
    """The default route (no backend=) of a plain file -> pipe transfer."""
    _native_only(backend)
    if os.environ.get("ZEROCOPY_BACKEND", "native") != "native":
        pytest.skip("ZEROCOPY_BACKEND makes another backend the default")
    sink = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert sink.stdin is not None
    pipe = sink.stdin.fileno()
    try:
        _measure(lambda size: zerocopy.transfer(sparse(size), pipe), Method.SENDFILE)
    finally:
        sink.stdin.close()
        sink.wait(30)


# -- the convoy: a busy thread must not slow the loop down ----------------------------------

CONVOY_CHUNK = 256 << 10  # small chunks, many calls: hundreds per tenth of a second
CONVOY_ALONE = 0.1  # seconds the calibrated transfer lasts without contention
CONVOY_FACTOR = 5  # beside a busy thread it must finish within this many times that
CONVOY_TRIES = 3  # a noisy machine may slow one try; the convoy slows every one

#: runs a transfer of the given size with the given timeout; returns its seconds
Timed = Callable[[int, float | None], float]


class Busy(threading.Thread):
    """Counts in pure Python without a pause: it holds the GIL whenever it can, so a
    thread that wants it back waits for the switch interval (5 ms) every time."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = False
        self.count = 0

    def run(self) -> None:
        while not self.stop:
            self.count += 1


def _beside_busy(run: Callable[[], float]) -> float:
    busy = Busy()
    busy.start()
    while not busy.count:
        time.sleep(0.001)
    try:
        return run()
    finally:
        busy.stop = True
        busy.join()


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _to_null(sparse: Callable[[int], int], backend: BackendName) -> Timed:
    """A sparse file to /dev/null: sendfile, one call per chunk."""
    def go(size: int, timeout: float | None) -> float:
        with open(os.devnull, "wb") as null:
            src = sparse(size)
            return _timed(lambda: zerocopy.transfer(src, null, chunk_size=CONVOY_CHUNK,
                                                    timeout=timeout, backend=backend))
    return go


def _relay(scratch: Path, backend: BackendName) -> Timed:
    """TCP to TCP between two ``cat`` processes (which hold no GIL): splice through
    our pipe, two calls per chunk; the old loop took the GIL back after each."""
    def go(size: int, timeout: float | None) -> float:
        path = scratch / "relayed"
        with open(path, "wb") as f:
            f.truncate(size)
        feed, src = tcp_pair()
        dst, drain = tcp_pair()
        with feed, src, dst, drain:
            source = subprocess.Popen(["cat", str(path)], stdout=feed.fileno())
            sink = subprocess.Popen(["cat"], stdin=drain.fileno(), stdout=subprocess.DEVNULL)
            feed.close()  # the peers hold their own copies
            drain.close()
            try:
                return _timed(lambda: zerocopy.transfer(
                    src, dst, count=size, chunk_size=CONVOY_CHUNK, timeout=timeout,
                    backend=backend))
            finally:
                src.close()  # after a timeout too: the peers see EPIPE and EOF, and end
                dst.close()
                source.wait(30)
                sink.wait(30)
    return go


@pytest.mark.parametrize("route", ["sendfile", "relay"])
def test_busy_thread_does_not_convoy_the_loop(backend: BackendName, sparse: Callable[[int], int],
                                              scratch: Path, route: str) -> None:
    """Taking the GIL back after every system call waits out a busy thread's switch
    interval each time (the convoy effect, bpo-7946): these transfers took 10 to 400
    times as long beside the counter as alone.  The loop now takes the GIL about every
    50 ms, so the counter costs it little.  The deadline cuts short a try that convoys."""
    _native_only(backend)
    go = _to_null(sparse, backend) if route == "sendfile" else _relay(scratch, backend)
    size = 1 << 28
    size = max(64 << 20, min(MAX_SIZE, int(size * CONVOY_ALONE / max(go(size, None), 1e-4))))
    tries = []
    for _ in range(CONVOY_TRIES):
        alone = go(size, None)
        limit = CONVOY_FACTOR * alone
        try:
            busy = _beside_busy(lambda: go(size, limit))
        except TimeoutError:
            tries.append(f"{alone:.3f}s alone, stopped by the deadline at {limit:.3f}s busy")
            continue
        tries.append(f"{alone:.3f}s alone, {busy:.3f}s busy")
        if busy <= limit:
            return
    pytest.fail(f"{route}: {size} bytes in {CONVOY_CHUNK >> 10} KiB chunks took more than "
                f"{CONVOY_FACTOR}x as long beside a busy Python thread as alone, in every "
                f"try: {'; '.join(tries)}")
