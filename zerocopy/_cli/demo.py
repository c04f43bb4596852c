"""``zerocopy demo``: move random bytes through every shape, each checked by SHA-256."""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable

from .. import TransferResult, available_backends, transfer
from .bench.kit import size_argument
from .cp import describe

__all__ = ["ALIASES", "HELP", "NAME", "add_arguments", "run"]

NAME = "demo"
ALIASES: tuple[str, ...] = ()
HELP = "move random bytes through every shape (file, socket) and check them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zerocopy demo``."""
    parser.add_argument("--size", type=size_argument, default=64 << 20,
                        help="bytes per shape, e.g. 4096, 16M, 1G (default 64M)")


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


def run(args: argparse.Namespace) -> int:
    """``zerocopy demo``."""
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
            print(f"  {name:17} {'ok ' if good else 'BAD'} {describe(result)}")
    return 0 if ok else 1
