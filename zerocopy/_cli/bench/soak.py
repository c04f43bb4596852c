"""``zerocopy bench soak``, ``storm`` and ``signals``: the long runs of issue 11.

* ``soak``: 10,000 transfers (``--reps``) mixed across shapes, backends, threads and
  asyncio tasks, a tenth of them failing on purpose (a closed fd, a reset peer, a
  timeout); the open fds and the RSS before and after, and the splice pipe pool's
  size all along, must stay flat and bounded.
* ``storm``: SIGALRM every millisecond during a 1 GiB transfer (``--size``) per shape
  and backend; every byte arrives once (hash checked).
* ``signals``: the signal window, from a signal sent to its Python handler running,
  during a transfer per shape and backend (docs/transfer.md, "Signals").

Every report records the machine and the CPU model; storm and signals run their cells
in a seeded interleaved order (``--reps`` rounds, ``--seed``), report medians, and pin
the transfer's thread and its peer thread to different cores when there are two.  The
pipe pool's size is read from ``zerocopy._pipes`` (what the soak checks is bounded).
The suite runs short versions (tests/contract/test_soak.py, test_signal_window.py,
test_real_faults.py).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import hashlib
import os
import random
import signal
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zerocopy

from .kit import Progress, cpu_model, status_kib, summarize
from .report import machine

__all__ = ["SoakReport", "Window", "run_soak", "signal_window", "signals",
           "signals_table", "soak", "soak_table", "storm", "storm_table"]

_SHAPES = ("file->file", "file->socket", "socket->file", "file->pipe")
# The failures made on purpose, and the errnos each must end in (and nothing else).
_FAILURES = {
    "closed fd": {errno.EBADF},
    "reset peer": {errno.EPIPE, errno.ECONNRESET},
    "timeout": {errno.ETIMEDOUT},
}


def _machine() -> dict[str, Any]:
    return {**machine(), "cpu_model": cpu_model()}


_CORE_TRANSFER, _CORE_PEER = 0, 1


def _pin(core: int) -> None:
    """Pin the calling thread to *core* (Linux: affinity 0 is the calling thread), so a
    peer thread and the transfer do not share one; nothing on one core."""
    if hasattr(os, "sched_setaffinity") and core in os.sched_getaffinity(0) \
            and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {core})


def _pinnable() -> bool:
    return (hasattr(os, "sched_setaffinity")
            and {_CORE_TRANSFER, _CORE_PEER} <= os.sched_getaffinity(0))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) - 1


def _pool_idle() -> int:
    from zerocopy._pipes import pool  # the pool's own count: bounded by PIPE_POOL_LIMIT

    return pool.idle()


@dataclass
class SoakReport:
    transfers: int = 0
    bytes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    fds: tuple[int, int] = (0, 0)
    rss_kib: tuple[int, int] = (0, 0)
    pool_max: int = 0
    seconds: float = 0.0


class _Soak:
    """One soak: the source file, the work list, and what was seen."""

    def __init__(self, where: str, backends: tuple[str, ...], seed: int) -> None:
        self.rng = random.Random(seed)
        self.data = os.urandom(1 << 20)
        self.src_path = os.path.join(where, "soak-src")
        with open(self.src_path, "wb") as f:
            f.write(self.data)
        self.where = where
        self.backends = backends
        self.report = SoakReport()
        self.lock = threading.Lock()

    def plan(self, n: int) -> list[tuple[str, str, int, str | None]]:
        """(shape, backend, size, failure) for each transfer, in a seeded order."""
        work = []
        for _ in range(n):
            failure = self.rng.choice(sorted(_FAILURES)) if self.rng.random() < 0.1 else None
            work.append((self.rng.choice(_SHAPES), self.rng.choice(self.backends),
                         self.rng.choice((0, 1, 4096, 65536, 300_000, 1 << 20)), failure))
        return work

    def note(self, outcome: str, moved: int, wrong: str | None = None) -> None:
        with self.lock:
            self.report.transfers += 1
            self.report.bytes += moved
            self.report.outcomes[outcome] += 1
            if wrong is not None:
                self.report.wrong.append(wrong)
            self.report.pool_max = max(self.report.pool_max, _pool_idle())

    def one(self, shape: str, backend: str, size: int, failure: str | None) -> None:
        """One transfer; checks its bytes (or its error) and notes the outcome."""
        want = self.data[:size]
        try:
            got, moved = self._move(shape, backend, size, failure)
        except (OSError, ValueError) as exc:
            expected = (failure is not None and isinstance(exc, OSError)
                        and exc.errno in _FAILURES[failure])
            self.note(f"{failure or 'unexpected'}: {type(exc).__name__}", 0,
                      None if expected else f"{shape} {backend} {size} {failure}: {exc!r}")
            return
        if failure is not None:  # it had to fail
            self.note(f"{failure}: no error", moved, f"{failure}: no error")
            return
        self.note("ok", moved,
                  None if got == want else f"{shape} {backend} {size}: {len(got)} bytes wrong")

    def _move(self, shape: str, backend: str, size: int,
              failure: str | None) -> tuple[bytes, int]:
        be: Any = backend
        if failure == "closed fd":
            fd = os.open(self.src_path, os.O_RDONLY)
            os.close(fd)
            with tempfile.TemporaryFile(dir=self.where) as dst:
                zerocopy.transfer(fd + 10_000, dst, backend=be)  # never an open fd
            return b"", 0
        if failure == "reset peer":
            a, b = socket.socketpair()
            b.close()
            with a, open(self.src_path, "rb") as src:
                zerocopy.transfer(src, a, size or 1, backend=be)
            return b"", 0
        if failure == "timeout":
            a, b = socket.socketpair()
            with a, b, tempfile.TemporaryFile(dir=self.where) as dst:
                zerocopy.transfer(a, dst, 10, backend=be, timeout=0.001)
            return b"", 0
        if shape == "file->file":
            with open(self.src_path, "rb") as src, \
                    tempfile.TemporaryFile(dir=self.where) as dst:
                moved = zerocopy.transfer(src, dst, size, backend=be).transferred
                dst.seek(0)
                return dst.read(), moved
        if shape == "socket->file":
            a, b = socket.socketpair()
            feeder = threading.Thread(target=_send_and_close, args=(b, self.data[:size]))
            feeder.start()
            with a, tempfile.TemporaryFile(dir=self.where) as dst:
                moved = zerocopy.transfer(a, dst, backend=be, timeout=30).transferred
                feeder.join()
                dst.seek(0)
                return dst.read(), moved
        if shape == "file->socket":
            a, b = socket.socketpair()
            return self._file_to_stream(a, a.close, b.detach(), size, be)
        r, w = os.pipe()
        return self._file_to_stream(w, lambda: os.close(w), r, size, be)

    def _file_to_stream(self, dst: object, close_dst: Callable[[], None], read_fd: int,
                        size: int, be: Any) -> tuple[bytes, int]:
        """*size* bytes of the source into *dst* (a socket or a pipe's write end) while
        a thread reads *read_fd*, its other end, to EOF; what arrived and the count."""
        out: list[bytes] = []
        drain = threading.Thread(target=_read_all, args=(read_fd, out))
        drain.start()
        with open(self.src_path, "rb") as src:
            try:
                moved = zerocopy.transfer(src, dst, size, backend=be, timeout=30).transferred
            finally:
                close_dst()
        drain.join()
        return out[0], moved

    async def one_async(self, shape: str, backend: str, size: int) -> None:
        """A file -> file transfer on the event loop (atransfer), checked."""
        be: Any = backend
        with open(self.src_path, "rb") as src, tempfile.TemporaryFile(dir=self.where) as dst:
            result = await zerocopy.atransfer(src, dst, size, backend=be)
            dst.seek(0)
            ok = dst.read() == self.data[:size]
        self.note("asyncio: ok", result.transferred,
                  None if ok else f"asyncio {shape} {backend} {size}: bytes wrong")


def _send_and_close(sock: socket.socket, data: bytes) -> None:
    with sock:
        sock.sendall(data)


def _recv_all(sock: socket.socket, out: list[bytes]) -> None:
    chunks = []
    with sock:
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    out.append(b"".join(chunks))


def _read_all(fd: int, out: list[bytes]) -> None:
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    out.append(b"".join(chunks))


def _run_mixed(soak: _Soak, work: list[tuple[str, str, int, str | None]],
               threads: int) -> None:
    """*work*: a fifth as asyncio tasks (16 at a time), the rest split between
    *threads* threads, all at once."""
    on_loop = [w for i, w in enumerate(work) if i % 5 == 0 and w[3] is None]
    in_threads = [w for i, w in enumerate(work) if not (i % 5 == 0 and w[3] is None)]

    def worker(part: list[tuple[str, str, int, str | None]]) -> None:
        for item in part:
            soak.one(*item)

    async def tasks() -> None:
        for start in range(0, len(on_loop), 16):
            await asyncio.gather(*(soak.one_async(s, b, n)
                                   for s, b, n, _ in on_loop[start:start + 16]))

    pool = [threading.Thread(target=worker, args=(in_threads[i::threads],))
            for i in range(threads)]
    for t in pool:
        t.start()
    asyncio.run(tasks())
    for t in pool:
        t.join()


def _fds_not_pooled() -> int:
    # Idle splice pipes are kept on purpose (two fds each, at most PIPE_POOL_LIMIT).
    return _open_fds() - 2 * _pool_idle()


def run_soak(transfers: int, backends: tuple[str, ...], threads: int = 4, seed: int = 1,
             where: str | None = None, progress: Progress | None = None) -> SoakReport:
    """*transfers* mixed transfers (:func:`_run_mixed`).  The fds (less the pool's
    idle pipes) and the RSS are read after a first fifth, run the same way (warm: the
    pool, the threads' arenas, the caches), and at the end: they must not grow."""
    with tempfile.TemporaryDirectory(prefix="zerocopy-soak-", dir=where) as scratch:
        soak = _Soak(scratch, backends, seed)
        work = soak.plan(transfers)
        split = max(1, transfers // 5)
        _run_mixed(soak, work[:split], threads)
        before = (_fds_not_pooled(), status_kib("VmRSS"))
        started = time.monotonic()
        _run_mixed(soak, work[split:], threads)
        if progress is not None:
            progress.advance()
        soak.report.seconds = time.monotonic() - started
        soak.report.fds = (before[0], _fds_not_pooled())
        soak.report.rss_kib = (before[1], status_kib("VmRSS"))
        return soak.report


def soak(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """``zerocopy bench soak``: --reps transfers (default 10000, --quick 1000)."""
    n = args.reps or (1000 if args.quick else 10_000)
    progress.step(f"soak: {n} transfers")
    backends = tuple(zerocopy.available_backends())
    report = run_soak(n, backends, seed=args.seed, where=args.dir, progress=progress)
    return {
        "mode": "soak", "machine": _machine(),
        "config": {"transfers": n, "backends": list(backends), "threads": 4,
                   "seed": args.seed},
        "transfers": report.transfers, "bytes": report.bytes,
        "outcomes": dict(report.outcomes), "wrong": report.wrong,
        "fds": {"before": report.fds[0], "after": report.fds[1]},
        "rss_kib": {"before": report.rss_kib[0], "after": report.rss_kib[1]},
        "pipe_pool_max_idle": report.pool_max, "seconds": report.seconds,
        "targets": [], "errors": report.wrong,
    }


def _header(report: dict[str, Any]) -> str:
    m = report["machine"]
    return f"  on {m['cpu_model']} ({m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']})"


def soak_table(report: dict[str, Any]) -> str:
    """The soak's report as text."""
    fds, rss = report["fds"], report["rss_kib"]
    lines = [f"soak: {report['transfers']} transfers ({report['bytes'] / 1e6:.0f} MB) in "
             f"{report['seconds']:.1f} s, {', '.join(report['config']['backends'])}; "
             f"4 threads + asyncio tasks",
             _header(report),
             f"  open fds   {fds['before']} -> {fds['after']}",
             f"  RSS        {rss['before']} KiB -> {rss['after']} KiB "
             f"({rss['after'] - rss['before']:+d} KiB)",
             f"  pipe pool  at most {report['pipe_pool_max_idle']} idle pipes",
             "  outcomes   " + ", ".join(f"{k} {v}" for k, v in sorted(report["outcomes"].items())),
             f"  wrong      {len(report['wrong'])}"]
    lines.extend(f"    {w}" for w in report["wrong"][:10])
    return "\n".join(lines)


def _cells(shapes: tuple[str, ...], reps: int, seed: int) -> list[tuple[str, str]]:
    """(shape, backend) for every round, each round in its own seeded order: the
    cells interleave, so a machine that gets busier meanwhile touches them all."""
    rng = random.Random(seed)
    cells = [(shape, backend) for backend in zerocopy.available_backends()
             for shape in shapes]
    order: list[tuple[str, str]] = []
    for _ in range(reps):
        round_ = list(cells)
        rng.shuffle(round_)
        order.extend(round_)
    return order


def storm(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """``zerocopy bench storm``: SIGALRM every millisecond during a --size (default
    1 GiB, --quick 64 MiB) transfer per shape and backend, --reps rounds (default 3,
    quick 1) interleaved; bytes checked by hash, medians reported."""
    size = args.size or ((64 << 20) if args.quick else (1 << 30))
    size = max(1 << 20, size >> 20 << 20)  # whole MiB: the source is made of 1 MiB blocks
    reps = args.reps or (1 if args.quick else 3)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    seen: list[int] = []

    def handler(signum: int, frame: object) -> None:
        seen.append(signum)

    old = signal.signal(signal.SIGALRM, handler)
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        with tempfile.TemporaryDirectory(prefix="zerocopy-storm-", dir=args.dir) as scratch:
            src_path = os.path.join(scratch, "src")
            block = os.urandom(1 << 20)
            with open(src_path, "wb") as f:
                for _ in range(size >> 20):
                    f.write(block)
            want = hashlib.sha256(block * (size >> 20)).hexdigest()
            _pin(_CORE_TRANSFER)
            for shape, backend in _cells(("file->file", "file->socket"), reps, args.seed):
                progress.step(f"storm: {shape} {backend}")
                seen.clear()
                signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
                started = time.monotonic()
                try:
                    got, moved = _storm_one(shape, backend, src_path, scratch)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                runs.setdefault((shape, backend), []).append(
                    {"bytes": moved, "signals": len(seen),
                     "seconds": time.monotonic() - started, "hash_ok": got == want})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    results = [{"shape": shape, "backend": backend, "bytes": size, "reps": len(cell),
                "signals": summarize(r["signals"] for r in cell)["median"],
                "seconds": summarize(r["seconds"] for r in cell),
                "hash_ok": all(r["hash_ok"] and r["bytes"] == size for r in cell)}
               for (shape, backend), cell in sorted(runs.items())]
    return {"mode": "storm", "machine": _machine(),
            "config": {"size": size, "reps": reps, "seed": args.seed,
                       "pinned": _pinnable()},
            "results": results, "targets": [],
            "errors": [r for r in results if not r["hash_ok"]]}


def _storm_one(shape: str, backend: str, src_path: str, scratch: str) -> tuple[str, int]:
    be: Any = backend
    digest = hashlib.sha256()
    if shape == "file->file":
        dst_path = os.path.join(scratch, "dst")
        with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
            moved = zerocopy.transfer(src, dst, backend=be).transferred
        with open(dst_path, "rb") as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
        os.unlink(dst_path)
        return digest.hexdigest(), moved
    a, b = socket.socketpair()

    def drain() -> None:
        _pin(_CORE_PEER)
        with b:
            while chunk := b.recv(1 << 20):
                digest.update(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with open(src_path, "rb") as src:
        try:
            moved = zerocopy.transfer(src, a, backend=be).transferred
        finally:
            a.close()
    reader.join()
    return digest.hexdigest(), moved


def storm_table(report: dict[str, Any]) -> str:
    """The storm's report as text."""
    config = report["config"]
    lines = [f"storm: SIGALRM every 1 ms during {config['size'] >> 20} MiB per shape and "
             f"backend, median of {config['reps']} interleaved rounds", _header(report)]
    for r in report["results"]:
        lines.append(f"  {r['shape']:13} {r['backend']:9} {r['signals']:8.0f} signals "
                     f"{r['seconds']['median']:6.2f} s  "
                     f"{'hash ok' if r['hash_ok'] else 'HASH WRONG'}")
    return "\n".join(lines)


@dataclass
class Window:
    """What :func:`signal_window` saw."""

    #: seconds from each signal sent to its handler running
    delays: list[float]
    #: how many handlers ran well before the transfer ended (5 ms or more): none when
    #: Python never ran while bytes moved, whatever the delays say
    during: int


def signal_window(shape: str, backend: str, size: int = 256 << 20,
                  every: float = 0.007) -> Window:
    """Seconds from a signal sent (SIGUSR1 to the main thread, the next *every* s after
    the last one's handler ran, from a helper thread) to its Python handler running,
    during one *size*-byte transfer of *shape*: how long the core keeps Python away
    while bytes move (docs/transfer.md: bounded by PYTHON_EVERY, 50 ms, when no call
    blocks)."""
    sent: list[float] = []
    delays: list[float] = []
    handled_at: list[float] = []
    running = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if sent:
            now = time.monotonic()
            delays.append(now - sent.pop())
            handled_at.append(now)

    def sender() -> None:
        _pin(_CORE_PEER)  # off the transfer's core: it would delay the measured thread
        main = threading.main_thread().ident or 0
        while running.is_set():
            if not sent:
                sent.append(time.monotonic())
                signal.pthread_kill(main, signal.SIGUSR1)
            time.sleep(every)  # the pace of the signals, not a synchronisation

    old = signal.signal(signal.SIGUSR1, handler)
    running.set()
    kicker = threading.Thread(target=sender)
    try:
        with tempfile.TemporaryDirectory(prefix="zerocopy-window-") as scratch:
            src_path = os.path.join(scratch, "src")
            with open(src_path, "wb") as f:
                f.truncate(size)  # sparse: the page cache serves zeros
            kicker.start()
            # A handler pending when the transfer returns runs at its return: only
            # those that ran 5 ms or more before it ran while bytes moved.
            ended = _window_transfer(shape, backend, src_path, scratch, size) - 0.005
    finally:
        running.clear()
        if kicker.is_alive():
            kicker.join()
        signal.signal(signal.SIGUSR1, old)
    return Window(delays, sum(at < ended for at in handled_at))


def _window_transfer(shape: str, backend: str, src_path: str, scratch: str,
                     size: int) -> float:
    """One transfer of *shape*; returns when (monotonic) its call returned."""
    be: Any = backend
    if shape == "file->file":
        with open(src_path, "rb") as src, open(os.path.join(scratch, "dst"), "wb") as dst:
            zerocopy.transfer(src, dst, backend=be)
            return time.monotonic()
    a, b = socket.socketpair()
    if shape == "file->socket":
        drain = threading.Thread(target=_pinned, args=(_recv_all, b, []))
        drain.start()
        with open(src_path, "rb") as src:
            try:
                zerocopy.transfer(src, a, backend=be)
                returned = time.monotonic()
            finally:
                a.close()
        drain.join()
        return returned
    # socket->file: a feeder thread sends zeros as fast as it can
    feeder = threading.Thread(target=_pinned, args=(_send_and_close, b, bytes(size)))
    feeder.start()
    with a, open(os.path.join(scratch, "dst"), "wb") as dst:
        zerocopy.transfer(a, dst, backend=be)
        returned = time.monotonic()
    feeder.join()
    return returned


def _pinned(work: Any, *args: Any) -> None:
    _pin(_CORE_PEER)
    work(*args)


_WINDOW_SHAPES = ("file->file", "file->socket", "socket->file")


def signals(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """``zerocopy bench signals``: the signal window per shape and backend, --reps
    rounds (default 3, quick 1) interleaved, during a --size transfer (1 GiB, quick
    64 MiB); the median over every signal of a cell, its 99th percentile and maximum."""
    size = args.size or ((64 << 20) if args.quick else (1 << 30))
    reps = args.reps or (1 if args.quick else 3)
    delays: dict[tuple[str, str], list[float]] = {}
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        _pin(_CORE_TRANSFER)
        for shape, backend in _cells(_WINDOW_SHAPES, reps, args.seed):
            progress.step(f"signals: {shape} {backend}")
            window = signal_window(shape, backend, size)
            delays.setdefault((shape, backend), []).extend(window.delays)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    results = []
    for (shape, backend), cell in sorted(delays.items()):
        cell.sort()
        results.append({"shape": shape, "backend": backend, "signals": len(cell),
                        "median_ms": 1e3 * cell[len(cell) // 2] if cell else None,
                        "p99_ms": 1e3 * cell[int(len(cell) * 0.99)] if cell else None,
                        "max_ms": 1e3 * cell[-1] if cell else None})
    return {"mode": "signals", "machine": _machine(),
            "config": {"size": size, "reps": reps, "seed": args.seed, "pinned": _pinnable()},
            "results": results, "targets": [], "errors": []}


def signals_table(report: dict[str, Any]) -> str:
    """The signal window's report as text."""
    config = report["config"]
    lines = [f"signals: from a signal sent to its handler running, during "
             f"{config['size'] >> 20} MiB per shape and backend, {config['reps']} "
             "interleaved rounds (ms)", _header(report)]
    for r in report["results"]:
        if r["max_ms"] is None:
            lines.append(f"  {r['shape']:13} {r['backend']:9} no signal landed")
            continue
        lines.append(f"  {r['shape']:13} {r['backend']:9} {r['signals']:6} signals  median "
                     f"{r['median_ms']:6.2f}  p99 {r['p99_ms']:6.2f}  max {r['max_ms']:6.2f}")
    return "\n".join(lines)
