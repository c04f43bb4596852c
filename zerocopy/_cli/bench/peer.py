"""The benchmark's loopback peers in Python, for when the C reference is not built.

    python -m zerocopy._cli.bench.peer sink [--hash]
    python -m zerocopy._cli.bench.peer source BLOCK
    python -m zerocopy._cli.bench.peer fifo PATH [--hash]

The same protocol as ``bench/zc_ref.c``'s peer modes: a socket peer listens on
127.0.0.1 and prints its port; the FIFO peer prints ``0`` when ready.  Then one line
per connection (or per writer of the FIFO) when it is done: ``<bytes> <cpu seconds>
<sha256 or ->``, the CPU being that of the thread that served it.  The source reads
an 8-byte big-endian count first and sends that many bytes of BLOCK, repeated.  A peer
exits when its stdin reaches end of file.

Without ``--hash`` the peers copy nothing (splice into /dev/null, sendfile from a
page-cached file), as a NIC's DMA would not, so the method under test is what is
measured; ``--hash`` reads every byte and hashes it, for the verification pass.  The
peers use ``os`` directly, never zerocopy: they must not depend on what they measure.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import resource
import socket
import struct
import sys
import threading
from collections.abc import Callable

__all__ = ["main"]

PIPE_SIZE = 1 << 20
_out = threading.Lock()


def _thread_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_THREAD)
    return use.ru_utime + use.ru_stime


def _say(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _report(nbytes: int, cpu0: float, digest: str = "-") -> None:
    _say(f"{nbytes} {_thread_cpu() - cpu0:.6f} {digest}")


def _drain_zero_copy(fd: int, is_pipe: bool) -> int:
    """Splice *fd* into /dev/null (through a pipe of ours unless *fd* is one)."""
    total = 0
    nul = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if is_pipe:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            while n := os.splice(fd, nul, PIPE_SIZE, flags=os.SPLICE_F_MOVE):
                total += n
            return total
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            while True:
                try:
                    n = os.splice(fd, w, PIPE_SIZE, flags=os.SPLICE_F_MOVE)
                except ConnectionResetError:
                    break  # the sender died: report what arrived
                if n == 0:
                    break
                left = n
                while left:
                    left -= os.splice(r, nul, left, flags=os.SPLICE_F_MOVE)
                total += n
        finally:
            os.close(r)
            os.close(w)
    finally:
        os.close(nul)
    return total


def _drain_hashing(fd: int) -> tuple[int, str]:
    h = hashlib.sha256()
    buf = bytearray(PIPE_SIZE)
    view = memoryview(buf)
    total = 0
    while n := os.readv(fd, [buf]):
        h.update(view[:n])
        total += n
    return total, h.hexdigest()


def _drain(fd: int, is_pipe: bool, hashing: bool) -> tuple[int, str]:
    if hashing:
        return _drain_hashing(fd)
    return _drain_zero_copy(fd, is_pipe), "-"


def _sink(conn: socket.socket, hashing: bool) -> None:
    cpu0 = _thread_cpu()
    total, digest = _drain(conn.fileno(), False, hashing)
    _report(total, cpu0, digest)


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            raise ConnectionError("the client closed before its request")
        data += more
    return data


def _send_block(conn: socket.socket, block_fd: int, block_size: int) -> None:
    cpu0 = _thread_cpu()
    (left,) = struct.unpack(">Q", _recv_exactly(conn, 8))
    sent = off = 0
    while left > 0:
        try:
            n = os.sendfile(conn.fileno(), block_fd, off, min(left, block_size - off))
        except (BrokenPipeError, ConnectionResetError):
            break  # the reader went away: report what was sent
        left -= n
        sent += n
        off = (off + n) % block_size
    _report(sent, cpu0)


def _serve(handle: Callable[[socket.socket], None]) -> None:
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    _say(str(server.getsockname()[1]))
    while True:
        conn, _ = server.accept()

        def one(conn: socket.socket = conn) -> None:
            with conn:
                handle(conn)

        threading.Thread(target=one, daemon=True).start()


def _fifo(path: str, hashing: bool) -> None:
    _say("0")
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # blocks until a writer opens it
        cpu0 = _thread_cpu()
        try:
            total, digest = _drain(fd, True, hashing)
        finally:
            # Closed before the report: the next writer's open() must wait for our next
            # open(), or its bytes would meet a reader about to close (EPIPE).
            os.close(fd)
        _report(total, cpu0, digest)


def _exit_with_stdin() -> None:
    """A peer never outlives its benchmark: exit when the parent closes our stdin."""
    while os.read(0, 64):
        pass
    os._exit(0)


def main(argv: list[str]) -> None:
    """Run the peer that *argv* names (see the module docstring)."""
    hashing = "--hash" in argv
    args = [a for a in argv if a != "--hash"]
    threading.Thread(target=_exit_with_stdin, daemon=True).start()
    if args[:1] == ["sink"]:
        _serve(lambda conn: _sink(conn, hashing))
    elif args[:1] == ["source"] and len(args) == 2:
        block_fd = os.open(args[1], os.O_RDONLY | os.O_CLOEXEC)
        block_size = os.fstat(block_fd).st_size
        _serve(lambda conn: _send_block(conn, block_fd, block_size))
    elif args[:1] == ["fifo"] and len(args) == 2:
        _fifo(args[1], hashing)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
