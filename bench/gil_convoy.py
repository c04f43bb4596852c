"""What a busy Python thread costs a transfer, and why (a development tool, not shipped).

    python bench/gil_convoy.py [SIZE_MIB] [REPS]

A 1 GiB file -> file transfer (copy_file_range, no peer process) runs alone and beside
a pure-Python counting thread, with transfer()'s default 8 MiB chunk, with bigger
chunks, and with a shorter switch interval.  While the counter holds the GIL, taking it
back waits up to the switch interval (5 ms).  A loop that takes it back after each chunk
loses that once per chunk, so bigger chunks and a shorter interval help; the core's
loops take it about every 50 ms (zerocopy/_gilfree.pxi), so neither should matter.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time

import zerocopy

SIZE = (int(sys.argv[1]) if len(sys.argv) > 1 else 1024) << 20
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 5


def timed(src: str, dst: str, chunk: int, busy: bool) -> float:
    stop = False

    def count() -> None:
        n = 0
        while not stop:
            n += 1

    counter = threading.Thread(target=count)
    if busy:
        counter.start()
        time.sleep(0.02)
    with open(src, "rb") as s, open(dst, "r+b") as d:
        t0 = time.perf_counter()
        zerocopy.transfer(s, d, chunk_size=chunk)
        seconds = time.perf_counter() - t0
    stop = True
    if busy:
        counter.join()
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        src, dst = os.path.join(tmp, "src"), os.path.join(tmp, "dst")
        block = os.urandom(1 << 20)
        for path in (src, dst):
            with open(path, "wb") as f:
                for _ in range(SIZE >> 20):
                    f.write(block)
        print(f"{SIZE >> 20} MiB file -> file, seconds (median of {REPS}), "
              f"alone and beside a counting thread:")
        for chunk, interval in ((8 << 20, 0.005), (64 << 20, 0.005), (256 << 20, 0.005),
                                (8 << 20, 0.0005)):
            sys.setswitchinterval(interval)
            alone = statistics.median(timed(src, dst, chunk, False) for _ in range(REPS))
            busy = statistics.median(timed(src, dst, chunk, True) for _ in range(REPS))
            chunks = -(-SIZE // chunk)
            print(f"  chunk {chunk >> 20:4} MiB, switch interval {interval * 1000:4g} ms: "
                  f"alone {alone:.3f}  busy {busy:.3f}  ({busy / alone:.1f}x; "
                  f"{chunks} chunks, {(busy - alone) / chunks * 1000:.2f} ms lost per chunk)")
        sys.setswitchinterval(0.005)


if __name__ == "__main__":
    main()
