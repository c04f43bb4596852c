"""Where one small transfer() spends its time, step by step (a development tool, not
shipped: it calls the transfer layer's internals, which move as they are tuned).

    python bench/percall.py [SIZE] [CALLS]      (with the package installed)

It moves SIZE bytes (default 4096) from a tmpfs file to a loopback socket drained by a
thread, CALLS times per form, and prints microseconds per call for: a bare
os.sendfile; transfer() with int fds (the compiled fast path when it applies); with a
buffered file object (the full path); and the full path taken apart into the steps
``transfer`` -> ``session`` performs, each timed on its own in the same loop.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import zerocopy
from zerocopy import _backend, _endpoints, _fd, _plan, _transfer

SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
CALLS = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
FILE = 1 << 20


def drain_elsewhere(sock: socket.socket) -> subprocess.Popen[bytes]:
    """Read *sock* to EOF in another process: a reader thread here would contend for
    the GIL that every call releases around its system call."""
    code = "import os, sys\nwhile os.read(int(sys.argv[1]), 1 << 20): pass"
    return subprocess.Popen([sys.executable, "-c", code, str(sock.fileno())],
                            pass_fds=[sock.fileno()])


def per_call(fn: Callable[[int], object]) -> float:
    """Median over 5 rounds of the mean microseconds per call."""
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(CALLS):
            fn(i * SIZE % FILE)
        rounds.append((time.perf_counter() - t0) / CALLS * 1e6)
    return statistics.median(rounds)


def steps(src: object, dst: object) -> dict[str, float]:
    """The full path's steps, timed one by one (ns clock around each)."""
    names = ["check numbers", "resolve backend", "pin endpoints", "classify src",
             "classify dst (+flush)", "check offsets", "plan", "make job", "_Run()",
             "read-ahead check", "run: backend loop (syscall)", "session exit: positions",
             "unpin"]
    acc = dict.fromkeys(names, 0)
    clock = time.perf_counter_ns
    for i in range(CALLS):
        off = i * SIZE % FILE
        t = [clock()]
        _transfer._check_numbers(SIZE, off, None, None, None)
        t.append(clock())
        chosen = _backend.resolve(None)
        t.append(clock())
        pins = _fd.Pins()
        s_obj, d_obj = pins.take(src), pins.take(dst)
        t.append(clock())
        s = _endpoints.source(s_obj)
        t.append(clock())
        d = _endpoints.destination(d_obj)
        t.append(clock())
        _transfer._check_offsets(s, d, off, None)
        t.append(clock())
        the_plan = _plan.make_plan(chosen.NAME, chosen.METHODS, s, d, dst_offset=False)
        t.append(clock())
        job = _transfer._make_job(s, d, SIZE, off, None, None, None, pins.watch(None))
        t.append(clock())
        run = _transfer._Run(chosen, s, d, job)
        t.append(clock())
        _transfer.trivial_result(run, the_plan)
        t.append(clock())
        result = run.run(the_plan.methods)
        t.append(clock())
        d.resync()
        t.append(clock())
        pins.release()
        t.append(clock())
        assert result.transferred == SIZE
        for k, name in enumerate(names):
            acc[name] += t[k + 1] - t[k]
    return {name: ns / CALLS / 1000 for name, ns in acc.items()}


def main() -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        path = os.path.join(tmp, "src")
        with open(path, "wb") as f:
            f.write(os.urandom(FILE))
        a, b = socket.socketpair()
        reader = drain_elsewhere(b)
        b.close()
        with open(path, "rb") as buffered, open(path, "rb", buffering=0) as raw, a:
            fd, sfd = raw.fileno(), a.fileno()
            forms: dict[str, Callable[[int], object]] = {
                "os.sendfile": lambda off: os.sendfile(sfd, fd, off, SIZE),
                "transfer(int, int)": lambda off: zerocopy.transfer(fd, sfd, SIZE, offset=off),
                "transfer(raw file, socket)":
                    lambda off: zerocopy.transfer(raw, a, SIZE, offset=off),
                "transfer(buffered file, socket)":
                    lambda off: zerocopy.transfer(buffered, a, SIZE, offset=off),
            }
            for fn in forms.values():  # warm-up
                for i in range(200):
                    fn(i * SIZE % FILE)
            base = per_call(forms["os.sendfile"])
            print(f"{SIZE} bytes per call, file -> socketpair drained by another process, "
                  f"us per call (median of 5 x {CALLS}):")
            for name, fn in forms.items():
                us = base if name == "os.sendfile" else per_call(fn)
                print(f"  {name:32} {us:7.2f}  {us / base:5.2f}x")
            print("the full path, step by step (buffered file -> socket):")
            parts = steps(buffered, a)
            for name, us in parts.items():
                print(f"  {name:32} {us:7.2f}")
            print(f"  {'sum of the steps':32} {sum(parts.values()):7.2f}")
        reader.wait()


if __name__ == "__main__":
    main()
