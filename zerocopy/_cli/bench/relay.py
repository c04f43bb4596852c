"""``zerocopy bench relay``: iperf3 through ``zerocopy relay`` (``--method splice`` and
``--method copy``: the splice-against-copy measurement of issue 10, in the same
interleaved run), socat (default buffer and ``-b 1048576``), haproxy (``mode tcp``,
``option splice-auto``) and direct; then each column against the issue's targets.

-P 1 and -P 8 forward, -P 1 reverse (``-R``), ``iperf3 -t 3``; Gbit/s from iperf3's
JSON and the relay process tree's CPU seconds per GB (utime+stime of the relay and
its reaped children, /proc/PID/stat); connections per second with a 1 KiB echo.
Repetitions interleaved (every relay once, then again), medians reported.  The
relay runs on core 0, iperf3 client and server, and the echo client and server, on
core 1 (taskset, sched_setaffinity).  Rerun: ``python -P -m zerocopy bench relay``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from .kit import Progress, cpu_model

__all__ = ["measure", "table"]

RELAYS = ("direct", "zerocopy-splice", "zerocopy-copy", "socat", "socat-1M", "haproxy")
#: The issue's anchors: Gbit/s at least the better of these two in every column, CPU
#: s/GB at most the lower, conn/s at least CONN_SHARE of haproxy's.
ANCHORS = ("socat-1M", "haproxy")
CONN_SHARE = 0.8
CASES = (("-P 1 fwd", ["-P", "1"]), ("-P 8 fwd", ["-P", "8"]), ("-P 1 rev", ["-P", "1", "-R"]))
INSTALL = {"iperf3": "apt install iperf3", "socat": "apt install socat",
           "haproxy": "apt install haproxy", "taskset": "apt install util-linux"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree_cpu(pid: int) -> float:
    """utime+stime+cutime+cstime of *pid* (children counted once reaped)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _wait_listen(port: int, timeout: float = 10.0) -> None:
    needle = f":{port:04X} 00000000:0000 0A"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                if needle in f.read():
                    return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def _start_relay(kind: str, listen: int, target: int, workdir: str) -> subprocess.Popen[bytes]:
    pin = ["taskset", "-c", "0"]
    if kind.startswith("zerocopy"):
        method = kind.partition("-")[2]
        argv = [sys.executable, "-P", "-m", "zerocopy", "relay", f"127.0.0.1:{listen}",
                f"127.0.0.1:{target}", "--method", method]
    elif kind.startswith("socat"):
        buf = ["-b", "1048576"] if kind == "socat-1M" else []
        argv = ["socat", *buf, f"TCP-LISTEN:{listen},bind=127.0.0.1,fork,reuseaddr",
                f"TCP:127.0.0.1:{target}"]
    else:
        cfg = os.path.join(workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n"
                    "  timeout client 60s\n  timeout server 60s\n  option splice-auto\n"
                    f"listen relay\n  bind 127.0.0.1:{listen}\n"
                    f"  server s1 127.0.0.1:{target}\n")
        argv = ["haproxy", "-db", "-f", cfg]
    proc = subprocess.Popen(pin + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_listen(listen)
    return proc


def _iperf(port: int, extra: list[str]) -> tuple[float, int]:
    done = subprocess.run(["taskset", "-c", "1", "iperf3", "-c", "127.0.0.1", "-p", str(port),
                           "-t", "3", "-J", *extra], capture_output=True, timeout=30, text=True)
    data = json.loads(done.stdout)
    end = data["end"]["sum_received"]
    return end["bits_per_second"] / 1e9, int(end["bytes"])


class _Echo:
    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    data = conn.recv(1024)
                    while len(data) < 1024 and (more := conn.recv(1024 - len(data))):
                        data += more
                    conn.sendall(data)
                except OSError:
                    pass


def _conn_rate(port: int, seconds: float = 1.5) -> float:
    """Serial 1 KiB echoes through *port* for *seconds*: completed ones per second.  A
    connection that fails or stalls (a busy shared machine: SYN retries, ports in
    TIME_WAIT) is not counted and the run goes on."""
    payload = b"x" * 1024
    count, deadline = 0, time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(payload)
                got = 0
                while got < 1024 and (chunk := s.recv(2048)):
                    got += len(chunk)
        except OSError:
            continue
        count += got == 1024
    return count / (time.monotonic() - started)


def measure(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Run every available relay through every case, interleaved, twice."""
    reps = max(1, getattr(args, "reps", 2) or 2)
    skipped = {t: INSTALL[t] for t in ("iperf3", "taskset") if shutil.which(t) is None}
    if skipped:
        return {"mode": "relay", "cpu": cpu_model(), "skipped": skipped, "results": {},
                "errors": []}
    relays = [r for r in RELAYS if r == "direct" or r.startswith("zerocopy") or
              shutil.which("haproxy" if r == "haproxy" else "socat")]
    for r in RELAYS:
        if r not in relays:
            skipped[r] = INSTALL["haproxy" if r == "haproxy" else "socat"]
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {r: {} for r in relays}
    conn: dict[str, list[float]] = {r: [] for r in relays}
    iperf_port = _port()
    server = subprocess.Popen(["taskset", "-c", "1", "iperf3", "-s", "-B", "127.0.0.1", "-p", str(iperf_port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    echo = _Echo()
    own_cpus = os.sched_getaffinity(0)
    workdir = tempfile.mkdtemp(prefix="zerocopy-bench-relay-")
    try:
        _wait_listen(iperf_port)
        for _rep in range(reps):
            for relay in relays:
                progress.step(f"relay {relay}")
                for label, extra in CASES:
                    samples[relay].setdefault(label, []).append(
                        _one(relay, iperf_port, extra, workdir))
                conn[relay].append(_one_conn(relay, echo.port, workdir))
    finally:
        os.sched_setaffinity(0, own_cpus)
        server.terminate()
        server.wait(10)
        echo.server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    results = {r: {label: {"gbit": statistics.median(g for g, _ in v),
                           "cpu_s_per_gb": (statistics.median(c for _, c in v)
                                            if r != "direct" else None)}
                   for label, v in samples[r].items()} | {"conn_s": statistics.median(conn[r])}
               for r in relays}
    return {"mode": "relay", "cpu": cpu_model(), "reps": reps, "skipped": skipped,
            "results": results, "errors": []}


def _one(relay: str, iperf_port: int, extra: list[str], workdir: str) -> tuple[float, float]:
    if relay == "direct":
        return _iperf(iperf_port, extra)[0], 0.0
    listen = _port()
    proc = _start_relay(relay, listen, iperf_port, workdir)
    try:
        before = _tree_cpu(proc.pid)
        gbit, moved = _iperf(listen, extra)
        time.sleep(0.2)  # let forked socat children exit and be reaped into cutime
        cpu = _tree_cpu(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(10)
    return gbit, cpu / max(moved / 1e9, 1e-9)


def _one_conn(relay: str, echo_port: int, workdir: str) -> float:
    # The echo client and server (this process) on core 1, the relay on core 0.
    if 1 in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {1})
    if relay == "direct":
        return _conn_rate(echo_port)
    listen = _port()
    proc = _start_relay(relay, listen, echo_port, workdir)
    try:
        return _conn_rate(listen)
    finally:
        proc.terminate()
        proc.wait(10)


def table(report: dict[str, Any]) -> str:
    """The issue's targets table, measured here."""
    lines = [f"relay: iperf3 -t 3 through each relay, medians of {report.get('reps')} "
             f"interleaved runs; CPU {report['cpu']}",
             "  through         | -P 1 fwd Gbit/s (CPU s/GB) | -P 8 fwd      | -P 1 rev      "
             "| conn/s (1 KiB echo)"]
    for relay, r in report["results"].items():
        cells = []
        for label, _ in CASES:
            c = r[label]
            cpu = f" ({c['cpu_s_per_gb']:.2f})" if c["cpu_s_per_gb"] is not None else ""
            cells.append(f"{c['gbit']:.1f}{cpu}")
        lines.append(f"  {relay:15} | {cells[0]:26} | {cells[1]:13} | {cells[2]:13} "
                     f"| {r['conn_s']:,.0f}")
    lines += _verdict(report["results"])
    for tool, how in report.get("skipped", {}).items():
        lines.append(f"  skipped {tool}: not installed ({how})")
    return "\n".join(lines)


def _verdict(results: dict[str, Any]) -> list[str]:
    """Each zerocopy row against the issue's targets, column by column."""
    anchors = [results[a] for a in ANCHORS if a in results]
    if len(anchors) < len(ANCHORS):
        return ["  targets: not judged (socat or haproxy missing)"]
    out = []
    for relay, r in results.items():
        if not relay.startswith("zerocopy"):
            continue
        cells = []
        for label, _ in CASES:
            best = max(a[label]["gbit"] for a in anchors)
            cpu = min(a[label]["cpu_s_per_gb"] for a in anchors)
            ok = r[label]["gbit"] >= best and r[label]["cpu_s_per_gb"] <= cpu
            cells.append(f"{label} {r[label]['gbit'] / best:.2f}x Gbit/s "
                         f"{r[label]['cpu_s_per_gb'] / cpu:.2f}x CPU {'met' if ok else 'MISSED'}")
        share = r["conn_s"] / max(results["haproxy"]["conn_s"], 1e-9)
        cells.append(f"conn/s {share:.2f}x haproxy "
                     f"{'met' if share >= CONN_SHARE else 'MISSED'}")
        out.append(f"  targets {relay}: " + "; ".join(cells))
    return out
