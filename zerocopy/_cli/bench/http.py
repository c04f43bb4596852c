"""``zerocopy bench http``: wrk against ``zerocopy serve``, nginx, aiohttp's
``web.static`` and ``python -m http.server``, one worker each, for small and large
files.

The server runs pinned to CPU 0 and wrk (``-t1 -c50``) to CPU 1; the servers and
sizes are interleaved in a seeded order, each cell is the median of its runs, and
the server's CPU time comes from /proc/PID/stat (user + system) over the run.
Files of 64 MiB and more are measured with ``-c4`` for twice as long, and by the
bytes wrk read (its ``Transfer/sec``, partial responses included): 50 connections
for 3 s complete too few 64 MiB responses for a request count to mean anything.
nginx gets ``sendfile on; tcp_nopush on; access_log off;`` in a generated config,
as the current user, without a master process; aiohttp runs on uvloop when it is
installed, as zerocopy does.  A missing tool is skipped with the way to install it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .kit import BenchError, Progress, cpu_model, format_size

__all__ = ["measure", "table"]

SIZES = (4 << 10, 64 << 10, 1 << 20, 64 << 20)
#: from this size on: fewer connections, longer runs, MB/s rather than req/s
BIG = 64 << 20
_CONNECTIONS, _BIG_CONNECTIONS = 50, 4
_AIOHTTP = """\
import asyncio, sys
from aiohttp import web
try:
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
except ImportError:
    pass
app = web.Application()
app.router.add_static("/", sys.argv[1])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
"""
_TICK = os.sysconf("SC_CLK_TCK")
_NGINX_CONF = """\
daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid;
error_log {dir}/error.log crit;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"nothing listens on port {port}")


def _commands(name: str, root: str, port: int, tmp: str) -> list[str]:
    pin = ["taskset", "-c", "0"]
    if name == "zerocopy":
        return pin + [sys.executable, "-m", "zerocopy", "serve", root, "--port", str(port),
                      "--access-log", "off"]
    if name == "aiohttp":
        return pin + [sys.executable, "-c", _AIOHTTP, root, str(port)]
    if name == "http.server":
        return pin + [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                      "--directory", root, str(port)]
    conf = os.path.join(tmp, f"nginx-{port}.conf")
    os.makedirs(os.path.join(tmp, "tmp"), exist_ok=True)
    with open(conf, "w") as f:
        f.write(_NGINX_CONF.format(dir=tmp, port=port, root=root))
    return pin + ["nginx", "-p", tmp, "-c", conf]


@contextmanager
def _server(name: str, root: str, tmp: str) -> Iterator[tuple[int, int]]:
    port = _free_port()
    proc = subprocess.Popen(_commands(name, root, port, tmp), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wrk(port: int, path: str, seconds: float, connections: int) -> dict[str, float]:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}",
                          f"-d{max(1, round(seconds))}s",
                          "--latency", f"http://127.0.0.1:{port}/{path}"],
                         capture_output=True, text=True, timeout=seconds + 30)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    total = re.search(r"(\d+) requests in", out.stdout)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out.stdout)
    # bytes received, partial responses included: for 64 MiB files a few seconds
    # complete too few requests for req/s x size to mean anything
    moved = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", out.stdout)
    units = {"B": 1.0, "KB": 2.0 ** 10, "MB": 2.0 ** 20, "GB": 2.0 ** 30}
    if rps is None or total is None:
        raise BenchError(f"wrk said: {out.stdout.strip() or out.stderr.strip()}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {"rps": float(rps.group(1)), "requests": float(total.group(1)),
            "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
            "bytes_per_s": float(moved.group(1)) * units[moved.group(2)] if moved else 0.0}


def _one_run(name: str, root: str, tmp: str, size: int, seconds: float) -> dict[str, float]:
    connections = _BIG_CONNECTIONS if size >= BIG else _CONNECTIONS
    if size >= BIG:
        seconds *= 2
    with _server(name, root, tmp) as (port, pid):
        _wrk(port, f"f{size}", 1.0, connections)  # warm-up: page cache, server caches
        before = _cpu_seconds(pid)
        got = _wrk(port, f"f{size}", seconds, connections)
        got["cpu_s"] = _cpu_seconds(pid) - before
    got["mbps"] = got["bytes_per_s"] / 1e6
    got["cpu_us_per_req"] = got["cpu_s"] / max(got["requests"], 1) * 1e6
    got["cpu_s_per_gb"] = got["cpu_s"] / max(got["bytes_per_s"] * seconds / 1e9, 1e-12)
    return got


def _servers() -> tuple[list[str], dict[str, str]]:
    found, skipped = ["zerocopy", "http.server"], {}
    if shutil.which("nginx") is None:
        skipped["nginx"] = "not installed (apt-get install nginx-light)"
    else:
        found.insert(0, "nginx")
    if importlib.util.find_spec("aiohttp") is None:
        skipped["aiohttp"] = "not installed (pip install aiohttp uvloop)"
    else:
        found.append("aiohttp")
    return found, skipped


def measure(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Run every server on every size, interleaved; medians per cell."""
    if shutil.which("wrk") is None:
        raise BenchError("bench http needs wrk: apt-get install wrk")
    if shutil.which("taskset") is None:
        raise BenchError("bench http needs taskset: apt-get install util-linux")
    if (os.cpu_count() or 1) < 2:
        raise BenchError("bench http pins server and wrk to different CPUs: needs 2")
    sizes = (args.size,) if args.size else (4 << 10, 64 << 20) if args.quick else SIZES
    reps = args.reps or 2
    seconds = 2.0 if args.quick else 3.0
    servers, skipped = _servers()
    cells = [(s, size) for s in servers for size in sizes for _ in range(reps)]
    random.Random(args.seed).shuffle(cells)
    progress.total = len(cells)
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    base = args.dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        for size in sizes:
            with open(os.path.join(root, f"f{size}"), "wb") as f:
                f.write(os.urandom(min(size, 1 << 20)) * max(1, size >> 20))
        for name, size in cells:
            runs.setdefault((name, size), []).append(_one_run(name, root, tmp, size, seconds))
            progress.step(f"{name} {format_size(size)}")
            progress.advance()
    results = []
    for (name, size), got in sorted(runs.items()):
        cell = {key: statistics.median(r[key] for r in got) for key in got[0]}
        results.append({"server": name, "size": size, "runs": len(got), **cell})
    return {"mode": "http", "cpu": cpu_model(), "seconds": seconds, "reps": reps,
            "wrk": f"-t1 -c{_CONNECTIONS}", "wrk_big": f"-t1 -c{_BIG_CONNECTIONS}",
            "skipped": skipped, "results": results}


def table(report: dict[str, Any]) -> str:
    """The report as text: each server's req/s, MB/s, p99 and CPU, with its ratio to
    nginx (req/s below 64 MiB, MB/s from there) and its CPU per GB beside nginx's."""
    big = report.get("wrk_big", "-t1 -c4")
    lines = [f"bench http: {report['cpu']}; server on CPU 0, wrk on CPU 1: "
             f"{report['wrk']} for {report['seconds']:g} s below {format_size(BIG)}, "
             f"{big} for {report['seconds'] * 2:g} s from {format_size(BIG)} (ratio of MB/s "
             f"read there); {report['reps']} runs, medians"]
    for name, why in report["skipped"].items():
        lines.append(f"  skipped {name}: {why}")
    nginx = {r["size"]: r for r in report["results"] if r["server"] == "nginx"}
    lines.append(f"  {'size':>7} {'server':>12} {'req/s':>10} {'MB/s':>8} {'p99 ms':>8} "
                 f"{'CPU us/req':>10} {'CPU s/GB':>8} {'x nginx':>7} {'CPU/GB x':>8}")
    for r in sorted(report["results"], key=lambda r: (r["size"], r["server"])):
        key = "rps" if r["size"] < BIG else "mbps"
        anchor = nginx.get(r["size"])
        ratio = f"{r[key] / anchor[key]:.2f}" if anchor and anchor[key] else "-"
        cpu = (f"{r['cpu_s_per_gb'] / anchor['cpu_s_per_gb']:.2f}"
               if anchor and anchor["cpu_s_per_gb"] else "-")
        lines.append(f"  {format_size(r['size']):>7} {r['server']:>12} {r['rps']:10.0f} "
                     f"{r['mbps']:8.0f} {r['p99_ms']:8.2f} {r['cpu_us_per_req']:10.1f} "
                     f"{r['cpu_s_per_gb']:8.3f} {ratio:>7} {cpu:>8}")
    return "\n".join(lines)
