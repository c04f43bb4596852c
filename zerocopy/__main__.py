"""Command line: ``zerocopy copy``, ``zerocopy plan``, ``zerocopy probe``, ``zerocopy demo``.

``zerocopy bench`` lives in :mod:`zerocopy._bench`.  ``python -m zerocopy`` is the same program.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence

from . import TransferResult, ZeroCopyError, available_backends, plan, transfer

__all__ = ["main"]


def _describe(result: TransferResult) -> str:
    text = (f"{result.transferred} bytes by {result.method.value} "
            f"({result.backend} backend, eof={result.eof})")
    for fb in result.fallbacks:
        text += f"\n  fell back from {fb.method.value}: {fb.reason}"
    return text


def _cmd_copy(args: argparse.Namespace) -> int:
    with open(args.src, "rb") as src, open(args.dst, "ab" if args.append else "wb") as dst:
        result = transfer(src, dst, args.count, offset=args.offset, backend=args.backend)
    print(_describe(result))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    with open(args.src, "rb") as src, open(args.dst, "ab") as dst:
        the_plan = plan(src, dst, backend=args.backend)
    print(f"{the_plan.src.value} -> {the_plan.dst.value} with the {the_plan.backend} backend:")
    for step in the_plan.steps:
        print(f"  try  {step.method.value:16} {step.reason}")
    for step in the_plan.skipped:
        print(f"  skip {step.method.value:16} {step.reason}")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from ._probe import as_dict, probe

    caps = probe(refresh=True)
    if args.json:
        print(json.dumps(as_dict(caps), indent=2))
        return 0
    answer = {True: "yes", False: "no", None: "unknown"}
    rows = [("platform", f"{caps.platform} {caps.kernel}".strip()),
            ("python", f"{caps.python} ({'GIL' if caps.gil else 'no GIL'})")]
    rows += [(name, answer[present]) for name, present in caps.syscalls().items()]
    rows += [("syscalls probed with", caps.probed_with),
             ("pipe size", str(caps.pipe_size)),
             ("pipe max size", str(caps.pipe_max_size)),
             ("backends", ", ".join(caps.backends) or "none"),
             ("default backend", caps.default_backend or "none"),
             ("disabled", ", ".join(sorted(m.value for m in caps.disabled)) or "none"),
             ("methods", ", ".join(m.value for m in caps.methods) or "none")]
    rows += [(f"{name} backend", f"unavailable: {why}") for name, why in caps.unavailable]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:{width}}  {value}")
    for note in caps.notes:
        print(f"note: {note}")
    return 0


def _sink(sock: socket.socket, digest: list[str]) -> None:
    h = hashlib.sha256()
    with sock:
        while data := sock.recv(1 << 20):
            h.update(data)
    digest.append(h.hexdigest())


def _demo_shapes(path: str, size: int) -> list[tuple[str, Callable[[], tuple[TransferResult, str]]]]:
    def f2f() -> tuple[TransferResult, str]:
        with open(path, "rb") as src, open(path + ".copy", "wb+") as dst:
            result = transfer(src, dst)
            dst.seek(0)
            return result, hashlib.sha256(dst.read()).hexdigest()

    def f2s() -> tuple[TransferResult, str]:
        a, b = socket.socketpair()
        digest: list[str] = []
        reader = threading.Thread(target=_sink, args=(b, digest))
        reader.start()
        with open(path, "rb") as src, a:
            result = transfer(src, a)
        reader.join()
        return result, digest[0]

    def s2s() -> tuple[TransferResult, str]:
        a, b = socket.socketpair()
        c, d = socket.socketpair()
        digest: list[str] = []
        reader = threading.Thread(target=_sink, args=(d, digest))
        reader.start()

        def feed() -> None:
            with open(path, "rb") as src, a:
                transfer(src, a)

        feeder = threading.Thread(target=feed)
        feeder.start()
        with b, c:
            result = transfer(b, c)
        feeder.join()
        reader.join()
        return result, digest[0]

    def s2f() -> tuple[TransferResult, str]:
        a, b = socket.socketpair()

        def feed() -> None:
            with open(path, "rb") as src, a:
                transfer(src, a)

        feeder = threading.Thread(target=feed)
        feeder.start()
        with b, open(path + ".recv", "wb+") as dst:
            result = transfer(b, dst)
            feeder.join()
            dst.seek(0)
            return result, hashlib.sha256(dst.read()).hexdigest()

    return [("file -> file", f2f), ("file -> socket", f2s),
            ("socket -> socket", s2s), ("socket -> file", s2f)]


def _cmd_demo(args: argparse.Namespace) -> int:
    size = args.size
    with tempfile.TemporaryDirectory(prefix="zerocopy-demo-") as tmp:
        path = os.path.join(tmp, "source")
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        with open(path, "rb") as f:
            expected = hashlib.sha256(f.read()).hexdigest()
        print(f"backends here: {', '.join(available_backends())}")
        print(f"moving {size} random bytes through every shape, checking SHA-256:")
        ok = True
        for name, shape in _demo_shapes(path, size):
            result, digest = shape()
            good = digest == expected and result.transferred == size
            ok &= good
            print(f"  {name:17} {'ok ' if good else 'BAD'} {_describe(result)}")
    return 0 if ok else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zerocopy", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    copy = sub.add_parser("copy", help="copy a file with transfer() and say how")
    copy.add_argument("src")
    copy.add_argument("dst")
    copy.add_argument("--count", type=int)
    copy.add_argument("--offset", type=int)
    copy.add_argument("--append", action="store_true", help="append to DST")
    copy.add_argument("--backend", choices=("native", "os", "portable"))
    copy.set_defaults(run=_cmd_copy)
    show = sub.add_parser("plan", help="show the methods transfer() would try")
    show.add_argument("src")
    show.add_argument("dst")
    show.add_argument("--backend", choices=("native", "os", "portable"))
    show.set_defaults(run=_cmd_plan)
    caps = sub.add_parser("probe", help="show what this platform and process can do")
    caps.add_argument("--json", action="store_true", help="print JSON")
    caps.set_defaults(run=_cmd_probe)
    demo = sub.add_parser("demo", help="move random bytes through every shape, checked")
    demo.add_argument("--size", type=int, default=64 << 20)
    demo.set_defaults(run=_cmd_demo)
    from ._bench import add_parser as add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except (ZeroCopyError, ValueError) as exc:
        print(f"zerocopy: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError as exc:
        # stdout closed early (| head): exit quietly, as CPython's json.tool does.
        raise SystemExit(exc.errno) from None
    return status


if __name__ == "__main__":
    sys.exit(main())
