"""``zerocopy bench``: throughput of ``transfer`` beside the stdlib and the C limit.

For each shape (file->file, file->socket, socket->file, socket->socket, file->pipe) it
times ``transfer`` (auto and each backend forced), the standard library's best ways
and, with ``--c-ref``, the kernel's own loops in C, interleaved in one run over several
repetitions.  Socket and pipe peers are separate processes, the same for every method,
that copy nothing themselves, so only the method differs.  Every method is checked
once against a SHA-256 of what arrived, and every timed run by its byte count.

The other modes (``small``, ``memory``, ``gil``, ``scaling``) live in ``modes``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from ... import BackendName, available_backends, transfer
from .report import machine, target, targets_table
from .kit import (
    BenchError, Peer, Progress, Workspace, cpu_seconds, format_size, parse_size, summarize,
)

__all__ = ["add_parser"]

SHAPES = ("f2f", "f2s", "s2f", "s2s", "f2p")
SHAPE_NAMES = {"f2f": "file -> file", "f2s": "file -> socket", "s2f": "socket -> file",
               "s2s": "socket -> socket", "f2p": "file -> pipe"}
#: bytes asked per call by the stdlib loops and the C loops: transfer's default chunk
CHUNK = 8 << 20
#: splice through a pipe moves at most the pipe's size per call; 1 MiB is the default
#: /proc/sys/fs/pipe-max-size and what zerocopy's own pipes ask for
PIPE_SIZE = 1 << 20
VERIFY_MAX = 64 << 20

Endpoint = IO[bytes] | socket.socket


def _fd(end: Endpoint) -> int:
    return end.fileno()


@dataclass(slots=True)
class Ends:
    """The two endpoints of one run, opened by the harness before the clock starts."""

    src: Endpoint | None
    dst: Endpoint | None
    src_path: str
    dst_path: str


# --- the methods -----------------------------------------------------------------------

def _transfer(backend: BackendName | None) -> Callable[[Ends], int]:
    def run(e: Ends) -> int:
        assert e.src is not None and e.dst is not None
        return transfer(e.src, e.dst, backend=backend).transferred
    return run


def _copyfileobj(e: Ends) -> int:
    assert e.src is not None and e.dst is not None
    fin: IO[bytes] = e.src.makefile("rb") if isinstance(e.src, socket.socket) else e.src
    fout: IO[bytes] = e.dst.makefile("wb") if isinstance(e.dst, socket.socket) else e.dst
    shutil.copyfileobj(fin, fout)
    fout.flush()
    if fin is not e.src:
        fin.close()  # the makefile() wrapper only: the socket stays open
    if fout is not e.dst:
        fout.close()
    return -1


def _copyfile(e: Ends) -> int:
    shutil.copyfile(e.src_path, e.dst_path)
    return -1


def _socket_sendfile(e: Ends) -> int:
    assert isinstance(e.dst, socket.socket) and e.src is not None
    assert not isinstance(e.src, socket.socket)
    return e.dst.sendfile(e.src)


def _sendfile_loop(e: Ends) -> int:
    assert e.src is not None and e.dst is not None
    src, dst, total = _fd(e.src), _fd(e.dst), 0
    while n := os.sendfile(dst, src, None, CHUNK):
        total += n
    return total


def _cfr_loop(e: Ends) -> int:
    assert e.src is not None and e.dst is not None
    src, dst, total = _fd(e.src), _fd(e.dst), 0
    while n := os.copy_file_range(src, dst, CHUNK):
        total += n
    return total


def _splice_loop(e: Ends) -> int:
    """The best a user gets from ``os.splice``: straight across when one side is a
    pipe, else through a pipe sized with F_SETPIPE_SZ (a 64 KiB pipe costs 16 times
    the calls, /work/shared/bench/README.md)."""
    assert e.src is not None and e.dst is not None
    src, dst, total = _fd(e.src), _fd(e.dst), 0
    if isinstance(e.dst, socket.socket) or not _is_pipe(dst):
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            size = fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            while n := os.splice(src, w, size):
                total += n
                while n:
                    n -= os.splice(r, dst, n)
        finally:
            os.close(r)
            os.close(w)
        return total
    while n := os.splice(src, dst, CHUNK):
        total += n
    return total


def _is_pipe(fd: int) -> bool:
    import stat

    return stat.S_ISFIFO(os.fstat(fd).st_mode)


@dataclass(frozen=True, slots=True)
class Case:
    """One method on one shape."""

    shape: str
    method: str
    #: "zerocopy", "stdlib" or "c"
    kind: str
    run: Callable[[Ends], int] | None = None
    c_method: str = ""
    uses_paths: bool = False
    note: str = ""

    @property
    def key(self) -> str:
        """``shape/method``, unique in a run."""
        return f"{self.shape}/{self.method}"


_COPYFILE_NOTE = ("opens DST with O_TRUNC, so it pays the page allocation that the "
                  "other methods, writing over a reused destination, do not")


def cases(shapes: Sequence[str], backends: Sequence[BackendName], c_ref: str | None,
          fresh_dst: bool) -> list[Case]:
    """Every method that applies to each shape, in display order."""
    out: list[Case] = []
    for shape in shapes:
        src, dst = shape[0], shape[2]
        out.append(Case(shape, "transfer", "zerocopy", _transfer(None)))
        out.extend(Case(shape, f"transfer[{b}]", "zerocopy", _transfer(b)) for b in backends)
        if shape == "f2f":
            out.append(Case(shape, "shutil.copyfile", "stdlib", _copyfile, uses_paths=True,
                            note="" if fresh_dst else _COPYFILE_NOTE))
        if shape == "f2s":
            out.append(Case(shape, "socket.sendfile", "stdlib", _socket_sendfile))
        out.append(Case(shape, "shutil.copyfileobj", "stdlib", _copyfileobj))
        if src == "f":
            out.append(Case(shape, "os.sendfile loop", "stdlib", _sendfile_loop))
        out.append(Case(shape, "os.splice loop", "stdlib", _splice_loop))
        if shape == "f2f":
            out.append(Case(shape, "os.copy_file_range loop", "stdlib", _cfr_loop))
        if c_ref is not None:
            methods = ["rw"] + (["sendfile"] if src == "f" else []) + ["splice"]
            methods += ["cfr"] if shape == "f2f" else []
            out.extend(Case(shape, f"C {m}", "c", c_method=m) for m in methods)
    return out


# --- one run ---------------------------------------------------------------------------

@dataclass(slots=True)
class Sample:
    """One timed (or verifying) run of a case."""

    seconds: float = 0.0
    cpu: float = 0.0
    peer_cpu: float | None = None
    error: str = ""
    digest_ok: bool | None = None
    rep: int = -1


@dataclass(slots=True)
class Outcome:
    """Every run of a case."""

    case: Case
    samples: list[Sample] = field(default_factory=list)
    verified_hash: bool | None = None
    errors: list[str] = field(default_factory=list)


class Runner:
    """Owns the workspace, the peers and the files; runs one case at a time."""

    def __init__(self, ws: Workspace, size: int, verify_size: int, c_ref: str | None,
                 fresh_dst: bool, progress: Progress) -> None:
        self.ws = ws
        self.size = size
        self.verify_size = verify_size
        self.c_ref = c_ref
        self.fresh_dst = fresh_dst
        self.progress = progress
        self.src = ws.pattern_file("src", size)
        self.vsrc = ws.pattern_file("vsrc", verify_size) if verify_size != size else self.src
        self.dst = ws.path("dst")
        self.vdst = ws.path("vdst")
        if not fresh_dst:
            # Overwritten in place by every run: allocating tmpfs pages (and, on a VM,
            # the host faulting them in) varies run to run by far more than the methods
            # differ, measured 0.5-2.1 s for the same 1 GiB C loop.
            shutil.copyfile(self.src, self.dst)
        self.fifo = ws.fifo("fifo")
        self.vfifo = ws.fifo("vfifo")
        self.peers: list[Peer] = []
        self.sink = self._peer("sink", False)
        self.source = self._peer("source", False)
        self.pipe_reader = self._peer("fifo", False, self.fifo)
        self.hash_sink = self._peer("sink", True)
        self.hash_pipe_reader = self._peer("fifo", True, self.vfifo)

    def _peer(self, role: str, hashing: bool, fifo: str | None = None) -> Peer:
        peer = Peer(role, self.ws, self.c_ref, hashing=hashing, fifo=fifo)
        self.peers.append(peer)
        return peer

    @property
    def peer_kind(self) -> str:
        """"c" or "python": who the timed runs face."""
        return self.sink.kind

    def close(self) -> None:
        """Stop the peers."""
        for peer in self.peers:
            peer.close()

    # Endpoints -----------------------------------------------------------------------
    def _open_src(self, shape: str, n: int, verify: bool) -> Endpoint:
        if shape[0] == "f":
            return open(self.vsrc if verify else self.src, "rb")
        return self.source.connect(request=n)

    def _open_dst(self, shape: str, verify: bool) -> Endpoint:
        kind = shape[2]
        if kind == "f":
            if verify or self.fresh_dst:
                return open(self.vdst if verify else self.dst, "wb")
            return open(self.dst, "r+b")
        if kind == "s":
            return (self.hash_sink if verify else self.sink).connect()
        pipe = open(self.vfifo if verify else self.fifo, "wb")
        # Sized here, before the clock starts, not by the reader after its open(): that
        # would race with the first writes.
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        return pipe

    def _dst_peer(self, shape: str, verify: bool) -> Peer | None:
        kind = shape[2]
        if kind == "s":
            return self.hash_sink if verify else self.sink
        if kind == "p":
            return self.hash_pipe_reader if verify else self.pipe_reader
        return None

    def _spec_src(self, shape: str, verify: bool) -> str:
        if shape[0] == "f":
            return "file:" + (self.vsrc if verify else self.src)
        return f"tcp:{self.source.port}"

    def _spec_dst(self, shape: str, verify: bool) -> str:
        kind = shape[2]
        if kind == "f":
            if verify or self.fresh_dst:
                return "file:" + (self.vdst if verify else self.dst)
            return "over:" + self.dst
        if kind == "s":
            return f"tcp:{(self.hash_sink if verify else self.sink).port}"
        return "fifo:" + (self.vfifo if verify else self.fifo)

    # Runs ----------------------------------------------------------------------------
    def run(self, case: Case, verify: bool) -> Sample:
        """Run *case* once (at the verify size, hash-checked, when *verify*)."""
        n = self.verify_size if verify else self.size
        try:
            sample, moved, dst_pos = (self._run_c(case, n, verify) if case.kind == "c"
                                      else self._run_python(case, n, verify))
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            # A peer may still report on the connection that failed: drop that line so
            # the next run does not read it as its own.
            for peer in self.peers:
                peer.discard()
            return Sample(error=f"{type(exc).__name__}: {exc}")
        problems = self._check(case, n, verify, moved, dst_pos, sample)
        if problems:
            sample.error = "; ".join(problems)
        return sample

    def _run_python(self, case: Case, n: int, verify: bool) -> tuple[Sample, int, int]:
        assert case.run is not None
        ends = Ends(None, None, self.vsrc if verify else self.src,
                    self.vdst if verify else self.dst)
        if not case.uses_paths:
            ends.src = self._open_src(case.shape, n, verify)
            ends.dst = self._open_dst(case.shape, verify)
        try:
            c0, t0 = cpu_seconds(), time.perf_counter()
            moved = case.run(ends)
            t1, c1 = time.perf_counter(), cpu_seconds()
            dst_pos = -1
            if ends.dst is not None and case.shape[2] == "f":
                dst_pos = os.lseek(_fd(ends.dst), 0, os.SEEK_CUR)
        finally:
            for end in (ends.dst, ends.src):  # dst first: its peer reports at EOF
                if end is not None:
                    end.close()
        return Sample(seconds=t1 - t0, cpu=c1 - c0), moved, dst_pos

    def _run_c(self, case: Case, n: int, verify: bool) -> tuple[Sample, int, int]:
        assert self.c_ref is not None
        argv = [self.c_ref, "run", case.c_method, self._spec_src(case.shape, verify),
                self._spec_dst(case.shape, verify), str(n), str(CHUNK)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)}: {done.stderr.strip()}")
        moved, seconds, cpu = done.stdout.split()
        return Sample(seconds=float(seconds), cpu=float(cpu)), int(moved), -1

    def _check(self, case: Case, n: int, verify: bool, moved: int, dst_pos: int,
               sample: Sample) -> list[str]:
        """Did exactly *n* bytes arrive (and, verifying, the right ones)?"""
        problems = []
        if moved not in (-1, n):
            problems.append(f"the method reported {moved} bytes, not {n}")
        if dst_pos not in (-1, n):
            problems.append(f"the destination's position is {dst_pos}, not {n}")
        peer_cpu = 0.0
        if case.shape[0] == "s":
            report = self.source.report()
            peer_cpu += report.cpu
            if report.nbytes != n:
                problems.append(f"the source peer sent {report.nbytes} bytes, not {n}")
        peer = self._dst_peer(case.shape, verify)
        digest = ""
        if peer is not None:
            report = peer.report()
            peer_cpu += report.cpu
            digest = report.digest
            if report.nbytes != n:
                problems.append(f"the {peer.role} peer got {report.nbytes} bytes, not {n}")
        elif verify or case.uses_paths or self.fresh_dst:
            path = self.vdst if verify else self.dst
            if os.path.getsize(path) != n:
                problems.append(f"the destination file has {os.path.getsize(path)} bytes")
        if peer is not None or case.shape[0] == "s":
            sample.peer_cpu = peer_cpu
        if verify:
            if peer is None:
                with open(self.vdst, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            sample.digest_ok = digest == self.ws.digest(n)
            if not sample.digest_ok:
                problems.append("the bytes that arrived differ from the source (SHA-256)")
        return problems


# --- the whole benchmark ---------------------------------------------------------------

def _per_gb(seconds_or_cpu: float, n: int) -> float:
    return seconds_or_cpu / (n / 1e9)


def measure(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Run the throughput benchmark; return the JSON-ready report."""
    shapes = _shapes(args.shapes)
    size = args.size or (64 << 20 if args.quick else 1 << 30)
    reps = args.reps or (3 if args.quick else 11)
    verify_size = min(size, VERIFY_MAX)

    all_cases = cases(shapes, available_backends(), args.c_ref, args.fresh_dst)
    ws = Workspace(args.dir)
    runner: Runner | None = None
    try:
        progress.total = len(all_cases) * (reps + 1)
        runner = Runner(ws, size, verify_size, args.c_ref, args.fresh_dst, progress)
        outcomes = {c.key: Outcome(c) for c in all_cases}
        for case in all_cases:  # the verification pass, also the warm-up
            progress.step(f"verify {case.key}")
            sample = runner.run(case, verify=True)
            outcomes[case.key].verified_hash = sample.digest_ok
            if sample.error:
                outcomes[case.key].errors.append(f"verify: {sample.error}")
            progress.advance()
        load_before = os.getloadavg()
        for rep, case in _interleaved(all_cases, shapes, reps, args.seed):
            progress.step(f"rep {rep + 1}/{reps} {case.key}")
            sample = runner.run(case, verify=False)
            sample.rep = rep
            if sample.error:
                outcomes[case.key].errors.append(sample.error)
            else:
                outcomes[case.key].samples.append(sample)
            progress.advance()
        load_after = os.getloadavg()
        peer_kind = runner.peer_kind
    finally:
        if runner is not None:
            runner.close()
        ws.close()
    results = [_result(o, size) for o in outcomes.values()]
    return {
        "mode": "throughput",
        "config": {"size": size, "reps": reps, "verify_size": verify_size, "shapes": shapes,
                   "chunk": CHUNK, "pipe_size": PIPE_SIZE, "c_ref": args.c_ref,
                   "peers": peer_kind, "dst": "fresh" if args.fresh_dst else "reused",
                   "seed": args.seed, "loadavg_before": load_before,
                   "loadavg_after": load_after, **machine()},
        "results": results,
        "targets": throughput_targets(results),
        "noise": noise(results),
    }


def _interleaved(all_cases: list[Case], shapes: list[str], reps: int,
                 seed: int) -> list[tuple[int, Case]]:
    """The run order: each repetition visits the shapes in a random order and, within
    a shape, its methods in a random order, so the methods compared with each other
    run seconds apart and drift on a shared machine hits them alike."""
    order = random.Random(seed)
    out: list[tuple[int, Case]] = []
    for rep in range(reps):
        for shape in order.sample(shapes, len(shapes)):
            block = [c for c in all_cases if c.shape == shape]
            order.shuffle(block)
            out.extend((rep, c) for c in block)
    return out


def _shapes(text: str | None) -> list[str]:
    if not text:
        return list(SHAPES)
    shapes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        raise BenchError(f"unknown shapes {sorted(unknown)}; known: {', '.join(SHAPES)}")
    return shapes


def _result(o: Outcome, size: int) -> dict[str, Any]:
    gbps = [size / s.seconds / 1e9 for s in o.samples if s.seconds > 0]
    cpu = [_per_gb(s.cpu, size) for s in o.samples]
    peer = [_per_gb(s.peer_cpu, size) for s in o.samples if s.peer_cpu is not None]
    return {
        "shape": o.case.shape, "method": o.case.method, "kind": o.case.kind,
        "bytes": size, "runs": len(o.samples),
        "gbps": summarize(gbps), "cpu_s_per_gb": summarize(cpu),
        "peer_cpu_s_per_gb": summarize(peer) if peer else None,
        "verified": {"hash": bool(o.verified_hash), "bytes": not o.errors and bool(o.samples),
                     "runs_checked": len(o.samples)},
        "errors": o.errors, "note": o.case.note,
        "samples": [{"rep": s.rep, "gbps": size / s.seconds / 1e9,
                     "cpu_s_per_gb": _per_gb(s.cpu, size),
                     "peer_cpu_s_per_gb": None if s.peer_cpu is None
                     else _per_gb(s.peer_cpu, size)} for s in o.samples],
    }


def _median(results: list[dict[str, Any]], shape: str, method: str,
            metric: str = "gbps") -> float | None:
    for r in results:
        if r["shape"] == shape and r["method"] == method and r[metric]:
            return float(r[metric]["median"])
    return None


def _find(results: list[dict[str, Any]], shape: str, method: str) -> dict[str, Any] | None:
    for r in results:
        if r["shape"] == shape and r["method"] == method and r["samples"]:
            return r
    return None


def paired(a: dict[str, Any], b: dict[str, Any], metric: str = "gbps") -> dict[str, float]:
    """a/b per repetition (the two ran seconds apart), summarized: steadier on a shared
    machine than the ratio of two medians taken minutes apart."""
    by_rep = {s["rep"]: s[metric] for s in b["samples"] if s[metric]}
    return summarize(s[metric] / by_rep[s["rep"]] for s in a["samples"]
                     if s["rep"] in by_rep)


def noise(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """transfer / transfer[native] per shape: the same loops measured twice (an A/A
    comparison), so its spread is how far this run's ratios can be trusted."""
    out = {}
    for shape in dict.fromkeys(r["shape"] for r in results):
        a, b = _find(results, shape, "transfer"), _find(results, shape, "transfer[native]")
        if a is not None and b is not None:
            out[shape] = paired(a, b)
    return out


def _target(name: str, shape: str, ratio: dict[str, float], limit: float,
            higher_is_better: bool = True, against: str = "") -> dict[str, Any]:
    return target(name, shape, ratio.get("median"), limit, higher_is_better, against,
                  [ratio["q1"], ratio["q3"]] if ratio else None)


def throughput_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's throughput targets: per-repetition ratios against the best C loop
    and the best stdlib way (best by median GB/s), and against copyfileobj."""
    out = []
    for shape in dict.fromkeys(r["shape"] for r in results):
        rows = [r for r in results if r["shape"] == shape and r["samples"]]
        auto = _find(results, shape, "transfer")
        if auto is None:
            continue
        for kind, name, limit in (("c", "transfer / best C loop >= 0.90", 0.90),
                                  ("stdlib", "transfer / best stdlib >= 1.0", 1.0)):
            others = [r for r in rows if r["kind"] == kind]
            if others:
                best = max(others, key=lambda r: r["gbps"]["median"])
                out.append(_target(name, shape, paired(auto, best), limit,
                                   against=best["method"]))
        cfo = _find(results, shape, "shutil.copyfileobj")
        if shape in ("f2s", "s2s") and cfo is not None:
            out.append(_target("transfer / copyfileobj >= 1.3", shape, paired(auto, cfo), 1.3,
                               against="shutil.copyfileobj"))
            out.append(_target("CPU/GB transfer / copyfileobj <= 0.6", shape,
                               paired(auto, cfo, "cpu_s_per_gb"), 0.6,
                               higher_is_better=False, against="shutil.copyfileobj"))
    return out


# --- output ----------------------------------------------------------------------------

def _fmt(stat: dict[str, float] | None, digits: int = 2) -> str:
    if not stat:
        return "-"
    return f"{stat['median']:.{digits}f}"


def throughput_table(report: dict[str, Any]) -> str:
    """The terminal table: one block per shape, fastest first."""
    cfg = report["config"]
    lines = [f"zerocopy bench: {format_size(cfg['size'])} per run, {cfg['reps']} interleaved "
             f"repetitions, medians [IQR]; {cfg['peers']} peers (zero-copy); destination "
             f"files {cfg['dst']}; {cfg['cpus']} CPUs, Linux {cfg['kernel']}, "
             f"Python {cfg['python']}; CPU pressure (PSI some avg60) at the end "
             f"{cfg['cpu_pressure_avg60']}%",
             "CPU s/GB: user+sys of the process running the method (peers not included: "
             "their CPU is the peer column)"]
    notes: list[str] = []
    by_shape: dict[str, list[dict[str, Any]]] = {}
    for r in report["results"]:
        by_shape.setdefault(r["shape"], []).append(r)
    for shape, rows in by_shape.items():
        auto = _median(report["results"], shape, "transfer")
        lines.append("")
        lines.append(f"{SHAPE_NAMES[shape]} ({shape})")
        lines.append(f"  {'method':26} {'GB/s':>6} {'[IQR]':>13} {'CPU s/GB':>9} "
                     f"{'peer':>6} {'vs transfer':>11}  check")
        rows = sorted(rows, key=lambda r: -(r["gbps"]["median"] if r["gbps"] else 0))
        for r in rows:
            g = r["gbps"]
            iqr = f"[{g['q1']:.2f}-{g['q3']:.2f}]" if g else ""
            ratio = f"{g['median'] / auto:.2f}x" if g and auto else "-"
            check = ("hash+bytes" if r["verified"]["hash"] and r["verified"]["bytes"]
                     else "FAILED")
            mark = ""
            if r["note"]:
                notes.append(f"{shape} {r['method']}: {r['note']}")
                mark = f" [{len(notes)}]"
            lines.append(f"  {r['method'] + mark:26} {_fmt(g):>6} {iqr:>13} "
                         f"{_fmt(r['cpu_s_per_gb'], 3):>9} {_fmt(r['peer_cpu_s_per_gb'], 3):>6} "
                         f"{ratio:>11}  {check}")
            for err in r["errors"][:2]:
                lines.append(f"      error: {err}")
    lines.extend(f"[{i}] {n}" for i, n in enumerate(notes, 1))
    lines.append("")
    lines.extend(targets_table(report["targets"]))
    if report.get("noise"):
        lines.append("noise (A/A: transfer / transfer[native] per repetition, the same "
                     "loops): " + ", ".join(f"{shape} {n['median']:.2f} [{n['q1']:.2f}-"
                                            f"{n['q3']:.2f}]"
                                            for shape, n in report["noise"].items()))
    return "\n".join(lines)
