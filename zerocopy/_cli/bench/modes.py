"""The benchmark's other modes: ``small`` (per-call cost), ``memory`` (peak RSS growth),
``gil`` (a Python thread's rate during a transfer) and ``scaling`` (GB/s per size,
and 8 threads against one).  Each returns a JSON-ready report with its targets."""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ... import BackendName, transfer
from .report import machine, target, targets_table
from . import http as http_bench
from .kit import (BenchError, Peer, Progress, Workspace, cpu_seconds, format_size, status_kib,
                  summarize)

__all__ = ["MODES", "TABLES"]


def _target(name: str, value: float | None, limit: float, higher_is_better: bool,
            shape: str = "", iqr: list[float] | None = None) -> dict[str, Any]:
    return target(name, shape, value, limit, higher_is_better, iqr=iqr)


# --- small: what one call costs --------------------------------------------------------

SMALL_SIZES = (65536, 4096)
_SMALL_FILE = 1 << 20
#: the call whose time is broken down with cProfile: the slowest form
_PROFILED = "transfer(buffered file, socket)"


def _small_calls(raw: Any, buffered: Any,
                 sock: socket.socket) -> dict[str, Callable[[int, int], int]]:
    """The calls compared: a bare sendfile, and transfer() given what users pass."""
    fd, sfd = raw.fileno(), sock.fileno()
    return {
        "os.sendfile": lambda off, n: os.sendfile(sfd, fd, off, n),
        "transfer(int, int)": lambda off, n: transfer(fd, sfd, n, offset=off).transferred,
        "transfer(raw file, socket)":
            lambda off, n: transfer(raw, sock, n, offset=off).transferred,
        "transfer(buffered file, socket)":
            lambda off, n: transfer(buffered, sock, n, offset=off).transferred,
    }


def _batch(call: Callable[[int, int], int], size: int, calls: int,
           start: int) -> tuple[float, float, int]:
    """*calls* calls of *size* bytes at rotating offsets; seconds and CPU per call."""
    offsets = [(start + i) * size % _SMALL_FILE for i in range(calls)]
    moved = 0
    c0, t0 = cpu_seconds(), time.perf_counter()
    for off in offsets:
        moved += call(off, size)
    t1, c1 = time.perf_counter(), cpu_seconds()
    return (t1 - t0) / calls, (c1 - c0) / calls, moved


def _profile_small(call: Callable[[int, int], int], size: int, calls: int) -> list[dict[str, Any]]:
    """Where a call's time goes (cProfile: inflates Python frames, so read as shares)."""
    prof = cProfile.Profile()
    prof.enable()
    for i in range(calls):
        call(i * size % _SMALL_FILE, size)
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    table = stats.stats  # type: ignore[attr-defined]
    for (filename, line, name), (_, nc, tt, ct, _) in table.items():
        rows.append({"function": f"{os.path.basename(filename)}:{line}({name})",
                     "calls_per_transfer": nc / calls, "tottime_us": tt / calls * 1e6,
                     "cumtime_us": ct / calls * 1e6})
    rows.sort(key=lambda r: -r["tottime_us"])
    return rows[:15]


def small(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Per-call cost of 64 KiB and 4 KiB file->socket transfers against bare sendfile."""
    rounds = args.reps or (5 if args.quick else 15)
    ws = Workspace(args.dir)
    sink = Peer("sink", ws, args.c_ref)
    results: list[dict[str, Any]] = []
    profile: dict[str, list[dict[str, Any]]] = {}
    total = 0
    try:
        src = ws.pattern_file("src", _SMALL_FILE)
        with open(src, "rb", buffering=0) as raw, open(src, "rb") as buffered, \
                sink.connect() as sock:
            calls = _small_calls(raw, buffered, sock)
            progress.total = len(SMALL_SIZES) * (rounds * len(calls) + 1)
            order = random.Random(args.seed)
            for size in SMALL_SIZES:
                per_call, _, moved = _batch(calls["os.sendfile"], size, 500, 0)  # warm-up
                total += moved
                for call in calls.values():
                    total += _batch(call, size, 200, 0)[2]
                n_calls = max(200, min(20000, int(0.05 / max(per_call, 1e-7))))
                times: dict[str, list[float]] = {name: [] for name in calls}
                cpus: dict[str, list[float]] = {name: [] for name in calls}
                for rnd in range(rounds):
                    names = list(calls)
                    order.shuffle(names)
                    for name in names:
                        progress.step(f"{format_size(size)} round {rnd + 1} {name}")
                        secs, cpu, moved = _batch(calls[name], size, n_calls, rnd * n_calls)
                        if moved != size * n_calls:
                            raise BenchError(f"{name}: moved {moved} bytes, "
                                             f"not {size * n_calls}")
                        total += moved
                        times[name].append(secs * 1e6)
                        cpus[name].append(cpu * 1e6)
                        progress.advance()
                progress.step(f"{format_size(size)} profile")
                profile[str(size)] = _profile_small(calls[_PROFILED], size,
                                                    min(n_calls, 3000))
                total += size * min(n_calls, 3000)
                progress.advance()
                base = summarize(times["os.sendfile"])["median"]
                base_cpu = summarize(cpus["os.sendfile"])["median"]
                for name in calls:
                    t, c = summarize(times[name]), summarize(cpus[name])
                    results.append({"size": size, "method": name, "calls": n_calls,
                                    "rounds": rounds, "us_per_call": t,
                                    "cpu_us_per_call": c, "vs_sendfile": t["median"] / base,
                                    "cpu_vs_sendfile": c["median"] / base_cpu})
        report = sink.report()
        if report.nbytes != total:
            raise BenchError(f"the sink got {report.nbytes} bytes, not {total}")
    finally:
        sink.close()
        ws.close()
    targets = []
    for size, limit in ((65536, 1.3), (4096, 2.0)):
        for r in results:
            if r["size"] == size and r["method"].startswith("transfer"):
                targets.append(_target(f"{format_size(size)} {r['method']} / os.sendfile "
                                       f"<= {limit} (time)", r["vs_sendfile"], limit, False,
                                       "f2s"))
                targets.append(_target(f"{format_size(size)} {r['method']} / os.sendfile "
                                       f"<= {limit} (CPU)", r["cpu_vs_sendfile"], limit,
                                       False, "f2s"))
    return {"mode": "small", "config": {"rounds": rounds, "file": _SMALL_FILE,
                                        "peers": sink.kind, "bytes_checked": total, **machine()},
            "results": results, "profile": profile, "targets": targets}


def small_table(report: dict[str, Any]) -> str:
    """Per-call microseconds, and the ratio to a bare os.sendfile."""
    cfg = report["config"]
    lines = [f"small transfers, file -> socket ({cfg['peers']} sink), medians of "
             f"{cfg['rounds']} interleaved rounds [IQR], microseconds per call",
             f"  {'size':>8} {'method':32} {'us/call':>8} {'[IQR]':>15} {'CPU us':>7} "
             f"{'vs sendfile':>11} {'CPU vs':>7}"]
    for r in report["results"]:
        t = r["us_per_call"]
        lines.append(f"  {format_size(r['size']):>8} {r['method']:32} {t['median']:8.2f} "
                     f"{'[%.2f-%.2f]' % (t['q1'], t['q3']):>15} "
                     f"{r['cpu_us_per_call']['median']:7.2f} {r['vs_sendfile']:10.2f}x "
                     f"{r['cpu_vs_sendfile']:6.2f}x")
    for size, rows in report["profile"].items():
        lines.append(f"  where a {format_size(int(size))} {_PROFILED} spends its "
                     "time (cProfile, us per transfer, top 8 by own time):")
        for row in rows[:8]:
            lines.append(f"    {row['tottime_us']:7.2f} own {row['cumtime_us']:7.2f} cum  "
                         f"{row['function']}")
    lines.extend(targets_table(report["targets"]))
    return "\n".join(lines)


# --- memory: peak RSS growth during a long transfer ------------------------------------

_CHILD = "from zerocopy._cli.bench.modes import memory_child; memory_child()"


def memory_child() -> None:
    """In a fresh process: one long transfer; prints its peak RSS growth as JSON."""
    spec = json.loads(sys.argv[1])
    src_kind, dst_kind, size, backend = spec["src"], spec["dst"], spec["size"], spec["backend"]

    def open_src(n: int) -> Any:
        if src_kind == "file":
            return open(spec["path"], "rb")
        sock = socket.create_connection(("127.0.0.1", spec["source_port"]))
        sock.sendall(n.to_bytes(8, "big"))
        return sock

    def open_dst() -> Any:
        if dst_kind == "null":
            return open(os.devnull, "wb")
        return socket.create_connection(("127.0.0.1", spec["sink_port"]))

    warm = 1 << 20  # imports, the pipe pool, first-call caches: not what is measured
    with open_src(warm) as s, open_dst() as d:
        transfer(s, d, warm if src_kind == "file" else None, backend=backend)
    print(json.dumps({"warmup": warm}), flush=True)
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux 4.0+, proc(5))
    except OSError:
        reset = False
    rss0, hwm0 = status_kib("VmRSS"), status_kib("VmHWM")
    with open_src(size) as s, open_dst() as d:
        t0 = time.perf_counter()
        result = transfer(s, d, size if src_kind == "file" else None, backend=backend)
        seconds = time.perf_counter() - t0
    hwm1 = status_kib("VmHWM")
    print(json.dumps({"transferred": result.transferred, "method": result.method.value,
                      "seconds": seconds, "rss_before_kib": rss0, "hwm_before_kib": hwm0,
                      "hwm_after_kib": hwm1, "hwm_reset": reset,
                      "growth_kib": hwm1 - (rss0 if reset else hwm0)}), flush=True)


def memory(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Peak RSS growth while moving --size (default 8 GiB) from a sparse tmpfs file."""
    size = args.size or ((1 << 30) if args.quick else (8 << 30))
    cases = [("file", "null", None), ("file", "socket", None), ("socket", "null", None),
             ("socket", "socket", None), ("file", "null", "portable"),
             ("file", "socket", "os")]
    ws = Workspace(args.dir)
    sink = Peer("sink", ws, args.c_ref)
    source = Peer("source", ws, args.c_ref)
    results = []
    progress.total = len(cases)
    try:
        path = ws.sparse_file("sparse", size)
        for src_kind, dst_kind, backend in cases:
            label = f"{src_kind} -> {dst_kind}" + (f" [{backend}]" if backend else "")
            progress.step(label)
            spec = {"src": src_kind, "dst": dst_kind, "size": size, "backend": backend,
                    "path": path, "sink_port": sink.port, "source_port": source.port}
            # cwd: not a source checkout, whose zerocopy/ would shadow the installed one
            done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)],
                                  capture_output=True, text=True, timeout=900, cwd=ws.dir)
            if done.returncode != 0:
                raise BenchError(f"memory child {label}: {done.stderr.strip()[-2000:]}")
            out = json.loads(done.stdout.strip().splitlines()[-1])
            for expected in (1 << 20, size):  # the warm-up, then the measured transfer
                peers = ([source] if src_kind == "socket" else []) + \
                    ([sink] if dst_kind == "socket" else [])
                for peer in peers:
                    got = peer.report().nbytes
                    if got != expected:
                        raise BenchError(f"{label}: the {peer.role} peer moved {got} bytes, "
                                         f"not {expected}")
            if out["transferred"] != size:
                raise BenchError(f"{label}: moved {out['transferred']} bytes, not {size}")
            results.append({"case": label, "backend": backend or "auto", "bytes": size,
                            **out, "gbps": size / out["seconds"] / 1e9})
            progress.advance()
    finally:
        sink.close()
        source.close()
        ws.close()
    targets = [_target(f"peak RSS growth, {r['case']} <= 8 MiB", r["growth_kib"] / 1024, 8.0,
                       False) for r in results if r["backend"] == "auto"]
    return {"mode": "memory", "config": {"size": size, "peers": sink.kind, **machine()},
            "results": results, "targets": targets}


def memory_table(report: dict[str, Any]) -> str:
    """Peak RSS growth per case."""
    cfg = report["config"]
    lines = [f"constant memory: peak RSS growth (VmHWM, reset just before) while moving "
             f"{format_size(cfg['size'])} from a sparse tmpfs file or a {cfg['peers']} "
             "source peer",
             f"  {'case':28} {'method':16} {'growth':>10} {'GB/s':>6}"]
    for r in report["results"]:
        lines.append(f"  {r['case']:28} {r['method']:16} {r['growth_kib']:7d} KiB "
                     f"{r['gbps']:6.2f}")
    lines.extend(targets_table(report["targets"]))
    return "\n".join(lines)


# --- gil: does a transfer let Python threads run? ----------------------------------------

class _Counter(threading.Thread):
    """Pure-Python counting; records (time, count) checkpoints so its rate over any
    window can be read afterwards, without asking it for the GIL at the window's end."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = False
        self.started = threading.Event()
        self.marks: list[tuple[float, int]] = []

    def run(self) -> None:
        n = 0
        clock = time.perf_counter
        self.marks.append((clock(), 0))
        self.started.set()
        while not self.stop:
            n += 1
            if not n & 0x3FFF:
                self.marks.append((clock(), n))

    def rate(self, t0: float, t1: float) -> float:
        """Counts per second between the first checkpoint after *t0* and the last
        before *t1*."""
        inside = [m for m in self.marks if t0 <= m[0] <= t1]
        if len(inside) < 2:
            return 0.0
        (a, na), (b, nb) = inside[0], inside[-1]
        return (nb - na) / (b - a)


def _gil_run(work: Callable[[], None] | None, seconds: float) -> tuple[float, float]:
    """Counter rate while *work* runs in this thread (or while it sleeps *seconds*)."""
    counter = _Counter()
    counter.start()
    counter.started.wait()
    time.sleep(0.01)
    t0 = time.perf_counter()
    if work is None:
        time.sleep(seconds)
    else:
        work()
    t1 = time.perf_counter()
    counter.stop = True
    counter.join()
    return counter.rate(t0, t1), t1 - t0


def _c_run(c_ref: str, method: str, src: str, dst: str, size: int, offset: int = 0) -> int:
    """One zc_ref loop in its own process (no GIL anywhere); the bytes it moved."""
    argv = [c_ref, "run", method, src, dst, str(size), str(8 << 20), str(offset)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return int(done.stdout.split()[0])


_SOLO_SECONDS = 0.3
_GIL_CASES: list[tuple[str, BackendName]] = [("f2f", "native"), ("f2s", "native"), ("s2s", "native"), ("f2f", "portable")]
_C_METHOD = {"f2f": "cfr", "f2s": "sendfile", "s2s": "splice"}


def gil(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """A counting thread's rate during a transfer, against its rate alone; with
    --c-ref also during the same transfer by a C process, which holds no GIL: what the
    counter loses then is CPU contention, not the GIL."""
    size = args.size or ((128 << 20) if args.quick else (1 << 30))
    reps = args.reps or (3 if args.quick else 5)
    c_ref: str | None = args.c_ref
    ws = Workspace(args.dir)
    sink = Peer("sink", ws, c_ref)
    source = Peer("source", ws, c_ref)
    try:
        src = ws.pattern_file("src", size)
        dst = ws.pattern_file("dst", size)  # overwritten in place (see throughput.Runner)

        def job(shape: str, backend: BackendName) -> Callable[[], None]:
            def go() -> None:
                if shape == "f2f":
                    with open(src, "rb") as s, open(dst, "r+b") as d:
                        n = transfer(s, d, backend=backend).transferred
                elif shape == "f2s":
                    with open(src, "rb") as s, sink.connect() as d:
                        n = transfer(s, d, backend=backend).transferred
                else:
                    with source.connect(size) as s, sink.connect() as d:
                        n = transfer(s, d, backend=backend).transferred
                _expect(n, size, f"{shape} {backend}")
                _peer_counts(shape, size, source, sink)
            return go

        def c_job(shape: str) -> Callable[[], None]:
            def go() -> None:
                assert c_ref is not None
                a = f"tcp:{source.port}" if shape == "s2s" else "file:" + src
                b = "over:" + dst if shape == "f2f" else f"tcp:{sink.port}"
                _expect(_c_run(c_ref, _C_METHOD[shape], a, b, size), size, f"C {shape}")
                _peer_counts(shape, size, source, sink)
            return go

        kinds = ("with", "alone") + (("with C",) if c_ref else ())
        steps = [(c, k) for c in _GIL_CASES for k in kinds
                 if not (k == "with C" and c[1] == "portable")]
        progress.total = reps * len(steps)
        rows: dict[str, dict[str, list[float]]] = {
            f"{s} {b}": {k: [] for k in ("with", "solo", "with C", "solo C", "t_with",
                                         "t_alone")}
            for s, b in _GIL_CASES}
        order = random.Random(args.seed)
        for rep in range(reps):
            for (shape, backend), kind in order.sample(steps, len(steps)):
                key = f"{shape} {backend}"
                progress.step(f"rep {rep + 1} {key} {kind}")
                row = rows[key]
                if kind == "alone":
                    t0 = time.perf_counter()
                    job(shape, backend)()
                    row["t_alone"].append(time.perf_counter() - t0)
                else:
                    # The counter's solo rate just before and just after, so a drift
                    # of the shared machine hits both sides of the ratio alike.
                    before = _gil_run(None, _SOLO_SECONDS)[0]
                    work = job(shape, backend) if kind == "with" else c_job(shape)
                    rate, t = _gil_run(work, 0)
                    after = _gil_run(None, _SOLO_SECONDS)[0]
                    row[kind].append(rate)
                    row["solo" if kind == "with" else "solo C"].append((before + after) / 2)
                    if kind == "with":
                        row["t_with"].append(t)
                progress.advance()
    finally:
        sink.close()
        source.close()
        ws.close()
    results = [_gil_result(key, row, size, reps) for key, row in rows.items()]
    targets = [_target(f"counting thread keeps >= 80% during {r['case']}",
                       r["kept"]["median"], 0.8, True, "",
                       [r["kept"]["q1"], r["kept"]["q3"]]) for r in results
               if not r["case"].endswith("portable")]
    return {"mode": "gil", "config": {"size": size, "reps": reps, "peers": sink.kind,
                                      "switch_interval_s": sys.getswitchinterval(),
                                      **machine()},
            "results": results, "targets": targets}


def _expect(n: int, size: int, what: str) -> None:
    if n != size:
        raise BenchError(f"{what}: moved {n} bytes, not {size}")


def _peer_counts(shape: str, size: int, source: Peer, sink: Peer) -> None:
    """Every byte reached the peer (a run's check, before the next one starts)."""
    if shape[0] == "s":
        _expect(source.report().nbytes, size, f"{shape}: the source peer")
    if shape[2] == "s":
        _expect(sink.report().nbytes, size, f"{shape}: the sink peer")


def _gil_result(key: str, row: dict[str, list[float]], size: int, reps: int) -> dict[str, Any]:
    def ratio(a: list[float], b: list[float]) -> dict[str, float]:
        return summarize(x / y for x, y in zip(a, b) if y > 0)

    return {"case": key, "bytes": size, "reps": reps,
            "counter_with_per_s": summarize(row["with"]),
            "counter_solo_per_s": summarize(row["solo"]),
            "kept": ratio(row["with"], row["solo"]),
            "kept_during_c": ratio(row["with C"], row["solo C"]) if row["with C"] else None,
            "transfer_s_with_counter": summarize(row["t_with"]),
            "transfer_s_alone": summarize(row["t_alone"]),
            "slowdown_by_counter": ratio(row["t_with"], row["t_alone"])}


def gil_table(report: dict[str, Any]) -> str:
    """The counter's rate kept, and what the counter costs the transfer."""
    cfg = report["config"]
    lines = [f"GIL: a pure-Python counting thread during a {format_size(cfg['size'])} "
             f"transfer, medians of {cfg['reps']} (interleaved; solo rate measured just "
             f"before and after each); switch interval "
             f"{cfg['switch_interval_s'] * 1000:g} ms",
             f"  {'case':14} {'kept':>5} {'[IQR]':>11} {'kept during C':>13} "
             f"{'transfer s alone':>16} {'with counter':>12}"]
    for r in report["results"]:
        k, c = r["kept"], r["kept_during_c"]
        lines.append(f"  {r['case']:14} {k['median']:5.0%} "
                     f"{'[%.0f%%-%.0f%%]' % (k['q1'] * 100, k['q3'] * 100):>11} "
                     f"{'-' if not c else format(c['median'], '.0%'):>13} "
                     f"{r['transfer_s_alone']['median']:16.3f} "
                     f"{r['transfer_s_with_counter']['median']:12.3f}")
    lines.append("  kept during C: the counter while a C process (no GIL) does the same "
                 "transfer: its loss there is CPU contention, not the GIL")
    lines.extend(targets_table(report["targets"]))
    return "\n".join(lines)


# --- scaling: GB/s per size, and threads ------------------------------------------------

def _sizes(top: int) -> list[int]:
    sizes, s = [], 1 << 20
    while s <= top:
        sizes.append(s)
        s <<= 2
    return sizes


def scaling(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """GB/s per size from 1 MiB up, and 8 threads' aggregate against one thread (with
    --c-ref also 8 C processes against one: what the kernel and CPUs allow)."""
    top = args.size or ((64 << 20) if args.quick else (4 << 30))
    reps = args.reps or (3 if args.quick else 5)
    thread_total = min(top, 1 << 30)
    sizes = _sizes(top)
    shapes = ["f2s", "f2f"]
    # The per-size curves: transfer() given a buffered file and a socket object (what
    # most callers pass), and given int fds (the compiled fast path, when it applies).
    curves = ["f2s", "f2s fds", "f2f", "f2f fds"]
    ws = Workspace(args.dir)
    sink = Peer("sink", ws, args.c_ref)
    expected_sink = 0
    per_size: dict[tuple[str, int], list[float]] = {(c, s): [] for c in curves for s in sizes}
    workers = [("threads", 1), ("threads", 8)]
    if args.c_ref:
        workers += [("C", 1), ("C", 8)]
    threads: dict[tuple[str, str, int], list[float]] = {
        (sh, kind, k): [] for sh in shapes for kind, k in workers}
    try:
        src = ws.pattern_file("src", top)
        dst = ws.pattern_file("dst", top)  # overwritten in place (see throughput.Runner)
        progress.total = reps * (len(curves) * len(sizes) + len(shapes) * len(workers))
        order = random.Random(args.seed)
        with open(src, "rb") as fsrc, open(dst, "r+b") as fdst, sink.connect() as sock:
            ends = {"f2s": (fsrc, sock), "f2f": (fsrc, fdst),
                    "f2s fds": (fsrc.fileno(), sock.fileno()),
                    "f2f fds": (fsrc.fileno(), fdst.fileno())}
            for rep in range(reps):
                steps: list[tuple[str, str, int]] = [
                    (c, "size", s) for c in curves for s in sizes]
                steps += [(sh, kind, k) for sh in shapes for kind, k in workers]
                order.shuffle(steps)
                for shape, kind, k in steps:
                    what = format_size(k) if kind == "size" else f"{k} {kind}"
                    progress.step(f"rep {rep + 1} {shape} {what}")
                    if kind == "size":
                        per_size[(shape, k)].append(_time_size(*ends[shape], shape, k))
                        if shape.startswith("f2s"):
                            expected_sink += k * _repeats(k)
                    elif kind == "threads":
                        threads[(shape, kind, k)].append(
                            _time_threads(fsrc, fdst, sink, shape, k, thread_total))
                    else:
                        threads[(shape, kind, k)].append(
                            _time_c_procs(args.c_ref, src, dst, sink, shape, k, thread_total))
                    progress.advance()
        if sink.report().nbytes != expected_sink:
            raise BenchError("scaling: the sink got a different byte count than was sent")
    finally:
        sink.close()
        ws.close()
    results = []
    for shape in curves:
        for s in sizes:
            t = summarize(per_size[(shape, s)])
            results.append({"shape": shape, "size": s, "seconds": t,
                            "gbps": s / t["median"] / 1e9})
    thread_rows = []
    targets = []
    for shape in shapes:
        for kind in dict.fromkeys(k for k, _ in workers):
            one, eight = threads[(shape, kind, 1)], threads[(shape, kind, 8)]
            g1 = thread_total / summarize(one)["median"] / 1e9
            g8 = thread_total / summarize(eight)["median"] / 1e9
            # per repetition: 1-worker seconds / 8-worker seconds = aggregate ratio
            ratio = summarize(a / b for a, b in zip(one, eight))
            thread_rows.append({"shape": shape, "workers": kind, "bytes": thread_total,
                                "gbps_1": g1, "gbps_8": g8, "ratio": ratio,
                                "seconds_1": summarize(one), "seconds_8": summarize(eight)})
            if kind == "threads":
                targets.append(_target("8 threads' aggregate / 1 thread >= 1.0",
                                       ratio["median"], 1.0, True, shape,
                                       [ratio["q1"], ratio["q3"]]))
    return {"mode": "scaling", "config": {"sizes": sizes, "reps": reps, "peers": sink.kind,
                                          "thread_bytes": thread_total, **machine()},
            "results": results, "threads": thread_rows, "targets": targets}


def _repeats(size: int) -> int:
    """Transfers per timing, so that each timing moves at least 64 MiB."""
    return max(1, (64 << 20) // size)


def _time_size(fsrc: Any, dst: Any, shape: str, size: int) -> float:
    """Seconds per transfer of *size* bytes (the mean of a back-to-back batch)."""
    k = _repeats(size)
    extra = {"dst_offset": 0} if shape.startswith("f2f") else {}
    t0 = time.perf_counter()
    for _ in range(k):
        n = transfer(fsrc, dst, size, offset=0, **extra).transferred  # type: ignore[arg-type]
        if n != size:
            raise BenchError(f"scaling {shape}: moved {n} bytes, not {size}")
    return (time.perf_counter() - t0) / k


def _time_threads(fsrc: Any, fdst: Any, sink: Peer, shape: str, k: int, total: int) -> float:
    """Wall seconds for *k* threads to move *total* bytes between them."""
    part = total // k
    socks = [sink.connect() for _ in range(k)] if shape == "f2s" else []
    errors: list[BaseException] = []
    gate = threading.Barrier(k + 1)

    def one(i: int) -> None:
        gate.wait()
        try:
            if shape == "f2s":
                n = transfer(fsrc, socks[i], part, offset=i * part).transferred
            else:
                n = transfer(fsrc, fdst, part, offset=i * part, dst_offset=i * part).transferred
            if n != part:
                raise BenchError(f"thread {i} moved {n} bytes, not {part}")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    workers = [threading.Thread(target=one, args=(i,)) for i in range(k)]
    for w in workers:
        w.start()
    gate.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - t0
    for s in socks:
        s.close()
    got = sum(sink.report().nbytes for _ in socks)
    if errors:
        raise errors[0]
    if socks and got != part * k:
        raise BenchError(f"{k} threads: the sink got {got} bytes, not {part * k}")
    return seconds


def _time_c_procs(c_ref: str, src: str, dst: str, sink: Peer, shape: str, k: int,
                  total: int) -> float:
    """Wall seconds for *k* zc_ref processes to move *total* bytes between them
    (disjoint regions of the same files, as the threads do)."""
    part = total // k
    method, target = ("sendfile", f"tcp:{sink.port}") if shape == "f2s" else ("cfr", "over:" + dst)
    argv = [[c_ref, "run", method, "file:" + src, target, str(part), str(8 << 20),
             str(i * part)] for i in range(k)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, text=True) for a in argv]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    seconds = time.perf_counter() - t0
    moved = sum(int(o.split()[0]) for o in outs if o.strip())
    if shape == "f2s":
        moved_sink = sum(sink.report().nbytes for _ in procs)
        _expect(moved_sink, part * k, f"{k} C processes: the sink")
    _expect(moved, part * k, f"{k} C processes")
    return seconds


def scaling_table(report: dict[str, Any]) -> str:
    """GB/s per size per shape, the fitted fixed cost, and the threads."""
    cfg = report["config"]
    lines = [f"scaling: transfer() GB/s per size (medians of {cfg['reps']}; small sizes "
             f"timed over back-to-back batches of >= 64 MiB); {cfg['peers']} sink; "
             "columns: buffered file and socket objects, or int fds"]
    shapes = list(dict.fromkeys(r["shape"] for r in report["results"]))
    lines.append(f"  {'size':>9} " + " ".join(f"{s:>8}" for s in shapes))
    for size in cfg["sizes"]:
        cells = [next(r for r in report["results"] if r["shape"] == s and r["size"] == size)
                 for s in shapes]
        lines.append(f"  {format_size(size):>9} "
                     + " ".join(f"{c['gbps']:8.2f}" for c in cells))
    lines.append(f"  concurrency, {format_size(cfg['thread_bytes'])} split between the "
                 "workers (transfer() in threads; C: zc_ref processes):")
    for t in report["threads"]:
        r = t["ratio"]
        lines.append(f"    {t['shape']} {t['workers']:7}: 1 -> {t['gbps_1']:.2f} GB/s, 8 -> "
                     f"{t['gbps_8']:.2f} GB/s aggregate ({r['median']:.2f}x "
                     f"[{r['q1']:.2f}-{r['q3']:.2f}] per repetition)")
    lines.extend(targets_table(report["targets"]))
    return "\n".join(lines)


from . import relay as _relay_mode  # noqa: E402 - registered with the others below
from . import soak as _soak_modes  # noqa: E402 - issue 11's long runs

MODES: dict[str, Callable[[argparse.Namespace, Progress], dict[str, Any]]] = {
    "small": small, "memory": memory, "gil": gil, "scaling": scaling,
    "http": http_bench.measure, "relay": _relay_mode.measure,
    "soak": _soak_modes.soak, "storm": _soak_modes.storm, "signals": _soak_modes.signals,
}
TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "small": small_table, "memory": memory_table, "gil": gil_table, "scaling": scaling_table,
    "http": http_bench.table, "relay": _relay_mode.table,
    "soak": _soak_modes.soak_table, "storm": _soak_modes.storm_table,
    "signals": _soak_modes.signals_table,
}
