"""Shared parts of ``zerocopy bench``: the workspace of pattern files, the peer
processes, CPU clocks, statistics and the progress bar."""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..common import CommandError

__all__ = [
    "BLOCK_SIZE", "BenchError", "Peer", "Progress", "Workspace", "cpu_seconds",
    "format_size", "parse_size", "size_argument", "status_kib", "summarize",
]

#: the source content is one pseudo-random block repeated: every file source and the
#: socket source peer send the same bytes, so one digest checks every shape
BLOCK_SIZE = 1 << 20
_COPY = 8 << 20


_PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer.py")


class BenchError(CommandError, ValueError):
    """The benchmark cannot run as asked (the CLI prints it as an error)."""


def parse_size(text: str) -> int:
    """``4096``, ``64K``, ``16M``, ``1G``, ``1GiB`` -> bytes (powers of 1024)."""
    units = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
    s = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = s[-1:] if s[-1:] in units and not s[-1:].isdigit() else ""
    try:
        value = float(s[: len(s) - len(unit)])
    except ValueError:
        raise BenchError(f"not a size: {text!r} (use e.g. 4096, 64K, 16M, 1G)") from None
    if value <= 0:
        raise BenchError(f"size must be positive: {text!r}")
    return int(value * (1 << units[unit]))


def size_argument(text: str) -> int:
    """:func:`parse_size` for argparse, which shows only the message of this error."""
    try:
        return parse_size(text)
    except BenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_size(n: int) -> str:
    """1048576 -> ``1 MiB``."""
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def status_kib(field: str) -> int:
    """A kB field of /proc/self/status (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {field} in /proc/self/status")


def cpu_model() -> str:
    """The CPU model (/proc/cpuinfo): figures move with it, so each report names it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def cpu_seconds() -> float:
    """User+sys CPU of this whole process so far."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def summarize(values: Iterable[float]) -> dict[str, float]:
    """Median, quartiles, min and max: the spread on a noisy machine, not a mean."""
    data = sorted(values)
    if not data:
        return {}
    if len(data) == 1:
        q1 = q3 = data[0]
    else:
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
    return {"median": statistics.median(data), "q1": q1, "q3": q3,
            "min": data[0], "max": data[-1], "n": float(len(data))}


class Progress:
    """A minimal progress bar on stderr (drawn only on a terminal, or when forced)."""

    def __init__(self, total: int, enabled: bool | None = None) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.monotonic()

    def step(self, label: str) -> None:
        """Say what runs next."""
        if not self.enabled:
            return
        width = 30
        filled = width * self.done // self.total
        elapsed = time.monotonic() - self.start
        line = (f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{elapsed:5.0f}s {label}")
        sys.stderr.write(line[:120].ljust(120))
        sys.stderr.flush()

    def advance(self) -> None:
        """One unit of work is done."""
        self.done += 1

    def close(self) -> None:
        """Clear the bar."""
        if self.enabled:
            sys.stderr.write("\r" + " " * 120 + "\r")
            sys.stderr.flush()


def _block() -> bytes:
    return random.Random(20240601).randbytes(BLOCK_SIZE)


class Workspace:
    """A directory on tmpfs holding the pattern block and the files made of it."""

    def __init__(self, base: str | None) -> None:
        if base is None and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            base = "/dev/shm"
        self.dir = tempfile.mkdtemp(prefix="zerocopy-bench-", dir=base)
        self.block = _block()
        self.block_path = self.path("block")
        with open(self.block_path, "wb") as f:
            f.write(self.block)

    def path(self, name: str) -> str:
        """A path inside the workspace."""
        return os.path.join(self.dir, name)

    def pattern_file(self, name: str, size: int) -> str:
        """A file of *size* bytes of the pattern, read back once so it is cached."""
        path = self.path(name)
        if os.path.exists(path) and os.path.getsize(path) == size:
            return path
        with open(path, "wb") as f:
            for off in range(0, size, BLOCK_SIZE):
                f.write(self.block[: min(BLOCK_SIZE, size - off)])
        with open(path, "rb") as f:
            while f.read(_COPY):
                pass
        return path

    def sparse_file(self, name: str, size: int) -> str:
        """A sparse file of *size* bytes (reads as zeros, takes no memory on tmpfs)."""
        path = self.path(name)
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    def fifo(self, name: str) -> str:
        """A named pipe in the workspace."""
        path = self.path(name)
        os.mkfifo(path)
        return path

    def digest(self, size: int) -> str:
        """SHA-256 of the first *size* bytes of the pattern stream."""
        h = hashlib.sha256()
        full, rest = divmod(size, BLOCK_SIZE)
        for _ in range(full):
            h.update(self.block)
        h.update(self.block[:rest])
        return h.hexdigest()

    def remove(self, name: str) -> None:
        """Delete a file of the workspace (frees its tmpfs memory)."""
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Delete the workspace."""
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class PeerReport:
    """What a peer says after one connection."""

    nbytes: int
    cpu: float
    digest: str


class Peer:
    """A peer process (zc_ref's or Python's): a sink, a source or a FIFO reader."""

    def __init__(self, role: str, workspace: Workspace, c_ref: str | None,
                 hashing: bool = False, fifo: str | None = None) -> None:
        self.role = role
        if c_ref is not None and not hashing:
            args = {"sink": [c_ref, "peer-sink"],
                    "source": [c_ref, "peer-source", workspace.block_path],
                    "fifo": [c_ref, "peer-fifo", fifo or ""]}[role]
            self.kind = "c"
        else:
            extra = {"sink": [], "source": [workspace.block_path], "fifo": [fifo or ""]}[role]
            # Run as a script (-P: without its own directory on sys.path): the peer
            # needs only the standard library, whichever zerocopy is importable.
            args = [sys.executable, "-P", _PEER_SCRIPT, role, *extra]
            if hashing:
                args.append("--hash")
            self.kind = "python"
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._pending = b""
        self.port = int(self._readline(30.0))

    def _readline(self, timeout: float) -> str:
        # Our own line buffer over the raw pipe: select() on a buffered file object
        # would miss lines already sitting in its buffer (concurrent connections).
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise BenchError(f"the {self.kind} {self.role} peer did not answer "
                                 f"in {timeout:.0f}s")
            more = os.read(fd, 4096)
            if not more:
                raise BenchError(f"the {self.kind} {self.role} peer exited "
                                 f"(status {self.proc.poll()})")
            self._pending += more
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode().strip()

    def report(self, timeout: float = 120.0) -> PeerReport:
        """The line for the connection that just ended."""
        nbytes, cpu, digest = self._readline(timeout).split()
        return PeerReport(int(nbytes), float(cpu), digest)

    def discard(self, timeout: float = 2.0) -> None:
        """Drop the lines of connections that failed."""
        while True:
            try:
                self._readline(timeout)
            except BenchError:
                return

    def connect(self, request: int | None = None) -> socket.socket:
        """A connection to this peer; a source is told how many bytes to send."""
        sock = socket.create_connection(("127.0.0.1", self.port))
        if request is not None:
            sock.sendall(struct.pack(">Q", request))
        return sock

    def close(self) -> None:
        """Stop the peer (closing its stdin is its signal to exit)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
