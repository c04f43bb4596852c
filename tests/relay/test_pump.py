"""zerocopy.relay and zerocopy.arelay between real loopback TCP sockets: bytes checked
by hash both ways, half-close, reset propagation, idle timeout, fds flat after."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import struct
import threading

import pytest

import zerocopy

TIMEOUT = 20.0


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=TIMEOUT)
        peer, _ = server.accept()
    peer.settimeout(TIMEOUT)
    return client, peer


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
    left_client, left_relay = tcp_pair()
    right_relay, right_server = tcp_pair()
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
@pytest.mark.parametrize("method", ["auto", "readwrite"])
@pytest.mark.parametrize("sizes", [(0, 0), (1, 0), (0, 5 << 20), (3 << 20, 1 << 10)])
def test_both_directions_with_half_close(sizes: tuple[int, int], method: str,
                                         use_async: bool) -> None:
    run_relay_case(*sizes, method=method, use_async=use_async)


def test_result_names_methods() -> None:
    a, a_peer = tcp_pair()
    b, b_peer = tcp_pair()
    a_peer.shutdown(socket.SHUT_WR)
    b_peer.shutdown(socket.SHUT_WR)
    result = zerocopy.relay(a, b)
    assert result.method_a_to_b == "splice" and result.method_b_to_a == "splice"
    assert isinstance(result, zerocopy.RelayResult)
    for s in (a, a_peer, b, b_peer):
        s.close()


def test_half_close_keeps_other_direction_going() -> None:
    """The client half-closes first, then the server answers (moby #1598)."""
    client, relay_a = tcp_pair()
    relay_b, server = tcp_pair()
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
def test_reset_on_one_side_resets_the_other(use_async: bool) -> None:
    client, relay_a = tcp_pair()
    relay_b, server = tcp_pair()
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
    server.close()


def test_idle_timeout_returns_idle() -> None:
    a, a_peer = tcp_pair()
    b, b_peer = tcp_pair()
    result = zerocopy.relay(a, b, idle_timeout=0.2)
    assert result.ended == "idle"
    result = asyncio.run(zerocopy.arelay(a, b, idle_timeout=0.2))
    assert result.ended == "idle"
    for s in (a, a_peer, b, b_peer):
        s.close()


def test_hundred_concurrent_arelays_fd_count_flat() -> None:
    """100 connections of random sizes both ways, on one event loop."""
    rng = random.Random(10)
    zerocopy_pool_before = open_fds()

    async def one(size_ab: int, size_ba: int) -> None:
        left_client, left_relay = tcp_pair()
        right_relay, right_server = tcp_pair()
        data_ab, data_ba = rng.randbytes(size_ab), rng.randbytes(size_ba)
        left_out: dict[str, str] = {}
        right_out: dict[str, str] = {}
        threads = [threading.Thread(target=talk, args=(left_client, data_ab, left_out)),
                   threading.Thread(target=talk, args=(right_server, data_ba, right_out))]
        for t in threads:
            t.start()
        result = await zerocopy.arelay(left_relay, right_relay)
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
    leftover = open_fds() - zerocopy_pool_before
    from zerocopy._pipes import pool
    assert leftover <= 2 * pool.limit
    pool.clear()
    assert open_fds() <= zerocopy_pool_before
