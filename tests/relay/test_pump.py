"""zerocopy.relay and zerocopy.arelay between real loopback TCP sockets: bytes checked
by hash both ways, half-close, reset propagation, residue on error and on idle, idle
timeout, signals during the GIL-free loop, fds flat after; the compiled pump and the
portable Python loop (used where the core is not built) alike."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import random
import socket
import struct
import signal
import threading
import time

import pytest

import zerocopy
from zerocopy._relay import common as relay_common

from ..support import relay_pair

TIMEOUT = 20.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def talk(sock: socket.socket, payload: bytes, out: dict[str, str]) -> None:
    """Send *payload*, half-close, read to EOF: what a half-close-aware client does."""
    def sender() -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=sender)
    thread.start()
    digest = hashlib.sha256()
    while chunk := sock.recv(1 << 16):
        digest.update(chunk)
    thread.join(TIMEOUT)
    out["got"] = digest.hexdigest()


def run_relay_case(size_ab: int, size_ba: int, method: str, use_async: bool) -> None:
    left_client, left_relay = relay_pair()
    right_relay, right_server = relay_pair()
    data_ab, data_ba = random.randbytes(size_ab), random.randbytes(size_ba)
    left_out: dict[str, str] = {}
    right_out: dict[str, str] = {}
    threads = [threading.Thread(target=talk, args=(left_client, data_ab, left_out)),
               threading.Thread(target=talk, args=(right_server, data_ba, right_out))]
    for t in threads:
        t.start()
    if use_async:
        result = asyncio.run(zerocopy.arelay(left_relay, right_relay, method=method))
    else:
        result = zerocopy.relay(left_relay, right_relay, method=method)
    for t in threads:
        t.join(TIMEOUT)
    assert right_out["got"] == hashlib.sha256(data_ab).hexdigest()
    assert left_out["got"] == hashlib.sha256(data_ba).hexdigest()
    assert (result.a_to_b, result.b_to_a, result.ended) == (size_ab, size_ba, "eof")
    for s in (left_client, left_relay, right_relay, right_server):
        s.close()


@pytest.mark.parametrize("use_async", [False, True], ids=["relay", "arelay"])
@pytest.mark.parametrize("method", ["auto", "splice", "copy", "readwrite"])
@pytest.mark.parametrize("sizes", [(0, 0), (1, 0), (0, 5 << 20), (3 << 20, 1 << 10)])
def test_both_directions_with_half_close(sizes: tuple[int, int], method: str,
                                         use_async: bool, implementation: str) -> None:
    run_relay_case(*sizes, method=method, use_async=use_async)


@pytest.mark.parametrize(("method", "named"), [("splice", "splice"), ("copy", "readwrite"),
                                               ("readwrite", "readwrite")])
def test_result_names_methods(method: str, named: str, implementation: str) -> None:
    a, a_peer = relay_pair()
    b, b_peer = relay_pair()
    a_peer.shutdown(socket.SHUT_WR)
    b_peer.shutdown(socket.SHUT_WR)
    result = zerocopy.relay(a, b, method=method)
    assert result.method_a_to_b == named and result.method_b_to_a == named
    assert isinstance(result, zerocopy.RelayResult)
    for s in (a, a_peer, b, b_peer):
        s.close()


def test_half_close_keeps_other_direction_going(implementation: str) -> None:
    """The client half-closes first, then the server answers (moby #1598)."""
    client, relay_a = relay_pair()
    relay_b, server = relay_pair()
    thread = threading.Thread(target=zerocopy.relay, args=(relay_a, relay_b))
    thread.start()
    client.sendall(b"request")
    client.shutdown(socket.SHUT_WR)
    got = b""
    while chunk := server.recv(100):
        got += chunk
    assert got == b"request"
    server.sendall(b"answer after the client's EOF")
    server.shutdown(socket.SHUT_WR)
    back = b""
    while chunk := client.recv(100):
        back += chunk
    thread.join(TIMEOUT)
    assert back == b"answer after the client's EOF"
    for s in (client, relay_a, relay_b, server):
        s.close()


def abort(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("use_async", [False, True], ids=["relay", "arelay"])
def test_reset_on_one_side_resets_the_other(use_async: bool, implementation: str) -> None:
    client, relay_a = relay_pair()
    relay_b, server = relay_pair()
    client.sendall(b"x" * 1000)
    got = b""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            if use_async:
                asyncio.run(zerocopy.arelay(relay_a, relay_b))
            else:
                zerocopy.relay(relay_a, relay_b)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    while len(got) < 1000:
        got += server.recv(1000)
    abort(client)
    thread.join(TIMEOUT)
    with pytest.raises(ConnectionResetError):
        server.recv(100)  # a RST, never a clean EOF (b"")
    (error,) = errors
    assert isinstance(error, zerocopy.RelayError)
    assert isinstance(error, ConnectionResetError)
    assert (error.a_to_b, error.b_to_a, error.side, error.ended) == (1000, 0, "a", "reset")
    # it crosses a process boundary intact (a ProcessPoolExecutor's future, say)
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, zerocopy.RelayError) and isinstance(again, ConnectionResetError)
    assert (again.errno, str(again)) == (error.errno, str(error))
    assert (again.a_to_b, again.b_to_a, again.side, again.ended) == (1000, 0, "a", "reset")
    server.close()


def test_idle_timeout_returns_idle(implementation: str) -> None:
    a, a_peer = relay_pair()
    b, b_peer = relay_pair()
    result = zerocopy.relay(a, b, idle_timeout=0.2)
    assert result.ended == "idle"
    result = asyncio.run(zerocopy.arelay(a, b, idle_timeout=0.2))
    assert result.ended == "idle"
    for s in (a, a_peer, b, b_peer):
        s.close()


@pytest.mark.parametrize("method", ["splice", "copy"])
def test_hundred_concurrent_arelays_fd_count_flat(method: str, implementation: str) -> None:
    """100 connections of random sizes both ways, on one event loop."""
    rng = random.Random(10)
    zerocopy_pool_before = open_fds()

    async def one(size_ab: int, size_ba: int) -> None:
        left_client, left_relay = relay_pair()
        right_relay, right_server = relay_pair()
        data_ab, data_ba = rng.randbytes(size_ab), rng.randbytes(size_ba)
        left_out: dict[str, str] = {}
        right_out: dict[str, str] = {}
        threads = [threading.Thread(target=talk, args=(left_client, data_ab, left_out)),
                   threading.Thread(target=talk, args=(right_server, data_ba, right_out))]
        for t in threads:
            t.start()
        result = await zerocopy.arelay(left_relay, right_relay, method=method)
        for t in threads:
            await asyncio.to_thread(t.join, TIMEOUT)
        assert right_out["got"] == hashlib.sha256(data_ab).hexdigest()
        assert left_out["got"] == hashlib.sha256(data_ba).hexdigest()
        assert (result.a_to_b, result.b_to_a) == (size_ab, size_ba)
        for s in (left_client, left_relay, right_relay, right_server):
            s.close()

    async def main() -> None:
        sizes = [(rng.randrange(0, 300_000), rng.randrange(0, 300_000)) for _ in range(100)]
        await asyncio.wait_for(asyncio.gather(*(one(x, y) for x, y in sizes)), 60)

    asyncio.run(main())
    # Pooled pipes may stay idle (two fds each, at most the pool's limit).
    pool = relay_common.pipe_budget.pool
    leftover = open_fds() - zerocopy_pool_before
    assert leftover <= 2 * pool.limit
    assert relay_common.pipe_budget.leased == 0
    pool.clear()
    assert open_fds() <= zerocopy_pool_before


def clogged_pair() -> tuple[socket.socket, socket.socket, socket.socket, socket.socket, bytes]:
    """client -> relay_a ... relay_b -> server, where the client has already queued far
    more than the tiny buffers between relay_b and the (never reading) server hold:
    a relay from relay_a to relay_b always stalls holding read, undelivered bytes."""
    client, relay_a = relay_pair()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        relay_b = socket.socket()
        relay_b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        relay_b.settimeout(TIMEOUT)
        relay_b.connect(listener.getsockname())
        server, _ = listener.accept()
    client.setblocking(False)
    sent = bytearray()
    block = random.Random(3).randbytes(1 << 16)
    while len(sent) < 64 << 20:
        try:
            n = client.send(block)
        except BlockingIOError:
            break
        sent += block[:n]
    client.settimeout(TIMEOUT)
    assert len(sent) > 256 << 10  # far more than the 4 KiB downstream buffers
    return client, relay_a, relay_b, server, bytes(sent)


@pytest.mark.parametrize("use_async", [False, True], ids=["relay", "arelay"])
@pytest.mark.parametrize("method", ["splice", "copy"])
def test_error_carries_each_directions_residue(method: str, use_async: bool,
                                               implementation: str) -> None:
    """The server resets while the relay holds bytes it read from the client: they
    come back on the error, exactly the ones after those delivered."""
    client, relay_a, relay_b, server, sent = clogged_pair()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            if use_async:
                asyncio.run(zerocopy.arelay(relay_a, relay_b, method=method))
            else:
                zerocopy.relay(relay_a, relay_b, method=method)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    abort(server)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    (error,) = errors
    assert isinstance(error, zerocopy.RelayError), error
    assert error.side == "b" and error.ended == "reset"
    residue = error.residue_a_to_b
    assert residue, "the relay stalls holding bytes: some must come back"
    assert residue == sent[error.a_to_b:error.a_to_b + len(residue)]
    assert error.residue_b_to_a == b"" and error.b_to_a == 0
    with pytest.raises(ConnectionResetError):  # the client is reset, not closed
        while client.recv(1 << 16):
            pass
    assert relay_a.fileno() == -1 and relay_b.fileno() == -1
    client.close()


@pytest.mark.parametrize("method", ["splice", "copy"])
def test_idle_hands_back_the_residue(method: str, implementation: str) -> None:
    """An idle timeout stops a clogged relay: its undelivered bytes come back on the
    result, and the sockets stay open and blocking as they were."""
    client, relay_a, relay_b, server, sent = clogged_pair()
    result = zerocopy.relay(relay_a, relay_b, method=method, idle_timeout=0.3)
    assert result.ended == "idle"
    assert result.residue_a_to_b
    assert result.residue_a_to_b == sent[result.a_to_b:result.a_to_b + len(result.residue_a_to_b)]
    assert relay_a.gettimeout() == TIMEOUT and relay_b.gettimeout() == TIMEOUT
    assert relay_common.pipe_budget.leased == 0
    for s in (client, relay_a, relay_b, server):
        s.close()


class Stop(Exception):
    """Raised by the test's signal handler."""


def test_signal_handler_stops_blocking_relay_with_counts(implementation: str) -> None:
    """The blocking relay waits GIL-free in the core, yet a signal handler still runs
    within ~50 ms; its exception stops the relay with what had moved."""
    client, relay_a = relay_pair()
    relay_b, server = relay_pair()
    client.sendall(b"x" * 1000)

    def handler(signum: int, frame: object) -> None:
        raise Stop

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        with pytest.raises(Stop) as caught:
            zerocopy.relay(relay_a, relay_b)
        took = time.monotonic() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert took < 5.0
    result = caught.value.relay_result  # type: ignore[attr-defined]
    assert (result.a_to_b, result.b_to_a, result.ended) == (1000, 0, "interrupted")
    assert relay_common.pipe_budget.leased == 0
    got = b""
    while len(got) < 1000:
        got += server.recv(1000)
    assert relay_a.gettimeout() == TIMEOUT  # restored: the sockets are the caller's again
    for s in (client, relay_a, relay_b, server):
        s.close()


def test_bad_arguments_are_refused_before_anything_moves() -> None:
    a, a_peer = relay_pair()
    with pytest.raises(ValueError, match="method"):
        zerocopy.relay(a, a_peer, method="sendfile")
    with pytest.raises(ValueError, match="same socket"):
        zerocopy.relay(a, a)
    with pytest.raises(ValueError, match="idle_timeout"):
        zerocopy.relay(a, a_peer, idle_timeout=0)
    with pytest.raises(TypeError):
        zerocopy.relay(a, 3)  # type: ignore[arg-type]
    assert a.gettimeout() == TIMEOUT
    for s in (a, a_peer):
        s.close()


def test_pipe_budget_bounds_spliced_directions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the budget's limit a direction copies instead of making a pipe."""
    monkeypatch.setattr(relay_common.pipe_budget, "limit", 1)
    a, a_peer = relay_pair()
    b, b_peer = relay_pair()
    a_peer.shutdown(socket.SHUT_WR)
    b_peer.shutdown(socket.SHUT_WR)
    result = zerocopy.relay(a, b, method="splice")
    assert (result.method_a_to_b, result.method_b_to_a) == ("splice", "readwrite")
    assert relay_common.pipe_budget.leased == 0
    for s in (a, a_peer, b, b_peer):
        s.close()


def test_unix_stream_sockets_relay() -> None:
    """AF_UNIX stream pairs relay too, by whichever method the kernel takes."""
    left, left_relay = socket.socketpair()
    right_relay, right = socket.socketpair()
    for s in (left, right):
        s.settimeout(TIMEOUT)
    out_l: dict[str, str] = {}
    out_r: dict[str, str] = {}
    data_l, data_r = random.randbytes(1 << 20), random.randbytes(70_000)
    threads = [threading.Thread(target=talk, args=(left, data_l, out_l)),
               threading.Thread(target=talk, args=(right, data_r, out_r))]
    for t in threads:
        t.start()
    result = zerocopy.relay(left_relay, right_relay)
    for t in threads:
        t.join(TIMEOUT)
    assert out_r["got"] == hashlib.sha256(data_l).hexdigest()
    assert out_l["got"] == hashlib.sha256(data_r).hexdigest()
    assert (result.a_to_b, result.b_to_a) == (1 << 20, 70_000)
    for s in (left, left_relay, right_relay, right):
        s.close()
