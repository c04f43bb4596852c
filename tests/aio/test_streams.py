"""``atransfer_to_writer``: zero-copy into an ``asyncio.StreamWriter`` keeps the
order of the stream.  Bytes written before the call, still buffered in the
transport, arrive first; bytes written after arrive after (aio-libs/aiohttp#1093 is
the failure this prevents).  Over real TCP connections, on both loops.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Method

from ..support import LoopFactory, epoll_watched, feed, pattern, run

BEFORE = pattern(6 << 20, seed=1)
BODY = pattern(3 << 20, seed=2)
AFTER = pattern(1 << 20, seed=3)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Peer:
    """A TCP server that reads one connection to EOF once released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.release.wait()
        self.received.set_result(await reader.read())
        writer.close()

    async def connect(self, **kwargs: object) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, **kwargs)  # type: ignore[arg-type]
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        return reader, writer

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_before_transfer_after_arrive_in_order(backend: BackendName, loop_factory: LoopFactory,
                                               make_file: Callable[..., Path]) -> None:
    body = make_file(BODY)

    async def main() -> None:
        peer = Peer()
        _, writer = await peer.connect()
        transport = writer.transport
        limits = transport.get_write_buffer_limits()
        writer.write(BEFORE)
        # The peer is not reading: most of BEFORE waits in the transport's buffer,
        # exactly the bytes a naive sendfile on the socket would overtake.
        assert transport.get_write_buffer_size() > 1 << 20
        with open(body, "rb") as f:
            task = asyncio.create_task(zerocopy.atransfer_to_writer(f, writer, backend=backend))
            await asyncio.sleep(0.01)
            assert not task.done()  # waiting for the transport's buffer to empty
            with pytest.raises(RuntimeError, match="in progress"):
                writer.write(b"interleaved")
            with pytest.raises(RuntimeError, match="in progress"):
                writer.writelines([b"interleaved"])
            if type(asyncio.get_running_loop()).__module__.startswith("asyncio"):
                with pytest.raises(RuntimeError, match="in progress"):
                    transport.write(b"interleaved")  # uvloop's cannot be guarded
            peer.release.set()
            result = await task
            assert f.tell() == len(BODY)
        assert result.transferred == len(BODY)
        assert result.method is (Method.READ_WRITE if backend == "portable" else Method.SENDFILE)
        assert transport.get_write_buffer_limits() == limits
        writer.write(AFTER)
        await writer.drain()
        writer.write_eof()
        assert await peer.received == BEFORE + BODY + AFTER
        writer.close()
        await peer.close()

    run(loop_factory, main())


def test_socket_source_into_writer(backend: BackendName, loop_factory: LoopFactory) -> None:
    """A proxy's shape: socket -> StreamWriter (splice through our pipe)."""

    async def main() -> None:
        peer = Peer()
        _, writer = await peer.connect()
        writer.write(BEFORE)
        feed_end, src = socket.socketpair()
        feed_end.setblocking(False)

        async def produce() -> None:
            await feed(feed_end.fileno(), BODY)
            feed_end.close()

        producer = asyncio.create_task(produce())
        peer.release.set()
        with src:
            result = await zerocopy.atransfer_to_writer(src, writer, backend=backend)
        await producer
        assert result.transferred == len(BODY) and result.eof
        assert result.method is (Method.READ_WRITE if backend == "portable" else Method.SPLICE)
        writer.write(AFTER)
        writer.write_eof()
        assert await peer.received == BEFORE + BODY + AFTER
        writer.close()
        await peer.close()

    run(loop_factory, main())


def test_cancelled_mid_transfer(backend: BackendName, loop_factory: LoopFactory,
                                make_file: Callable[..., Path]) -> None:
    """Cancelled while blocked on a peer that does not read: the counts are on the
    CancelledError, our fd is no longer watched, writes work again, and the peer
    gets the stream in order up to the cancel point."""
    body = make_file(BODY)

    async def main() -> None:
        peer = Peer()
        _, writer = await peer.connect()
        watched_before = epoll_watched()
        own_fd = writer.get_extra_info("socket").fileno()
        with open(body, "rb") as f:
            task = asyncio.create_task(zerocopy.atransfer_to_writer(f, writer, backend=backend))
            for _ in range(5000):  # until it blocks on the full connection
                await asyncio.sleep(0.001)
                if epoll_watched() - watched_before - {own_fd}:
                    break
            else:
                raise AssertionError("the transfer never waited for the socket")
            task.cancel()
            with pytest.raises(asyncio.CancelledError) as info:
                await task
            done: int = info.value.transferred  # type: ignore[attr-defined]
            assert 0 < done < len(BODY)
            assert f.tell() == done
        assert epoll_watched() <= watched_before | {own_fd}  # the dup is gone from epoll
        writer.write(AFTER)
        peer.release.set()
        writer.write_eof()
        assert await peer.received == BODY[:done] + AFTER
        writer.close()
        await peer.close()

    run(loop_factory, main())


def test_one_transfer_per_writer_at_a_time(loop_factory: LoopFactory,
                                           make_file: Callable[..., Path]) -> None:
    body = make_file(BODY)

    async def main() -> None:
        peer = Peer()
        _, writer = await peer.connect()
        writer.write(BEFORE)
        with open(body, "rb") as f, open(body, "rb") as g:
            first = asyncio.create_task(zerocopy.atransfer_to_writer(f, writer))
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="already in progress"):
                await zerocopy.atransfer_to_writer(g, writer)
            peer.release.set()
            assert (await first).transferred == len(BODY)
        writer.write_eof()
        assert await peer.received == BEFORE + BODY
        writer.close()
        await peer.close()

    run(loop_factory, main())


def test_subprocess_stdin(backend: BackendName, loop_factory: LoopFactory,
                          make_file: Callable[..., Path]) -> None:
    """A pipe transport (a child's stdin) keeps the order too."""
    body = make_file(BODY)

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        out = asyncio.create_task(proc.stdout.read())
        proc.stdin.write(BEFORE)
        with open(body, "rb") as f:
            await zerocopy.atransfer_to_writer(f, proc.stdin, backend=backend)
        proc.stdin.write(AFTER)
        await proc.stdin.drain()
        proc.stdin.close()
        data = await out
        await proc.wait()
        return data

    assert run(loop_factory, main()) == BEFORE + BODY + AFTER


def test_closing_writer_refused(loop_factory: LoopFactory,
                                make_file: Callable[..., Path]) -> None:
    body = make_file(BODY)

    async def main() -> None:
        peer = Peer()
        _, writer = await peer.connect()
        writer.close()
        with open(body, "rb") as f:
            with pytest.raises(ConnectionResetError):
                await zerocopy.atransfer_to_writer(f, writer)
            assert f.tell() == 0
        await peer.close()

    run(loop_factory, main())


def test_tls_refused(loop_factory: LoopFactory, scratch: Path,
                     make_file: Callable[..., Path]) -> None:
    """Bytes written to a TLS connection's socket would bypass encryption."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a throwaway certificate")
    key, cert = scratch / "key.pem", scratch / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    body = make_file(BODY)

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                  server_hostname="localhost")
        with open(body, "rb") as f:
            with pytest.raises(ValueError, match="TLS"):
                await zerocopy.atransfer_to_writer(f, writer)
        writer.write(b"still usable")
        await writer.drain()
        writer.close()
        server.close()
        await server.wait_closed()

    run(loop_factory, main())


def test_deadline_covers_the_flush(loop_factory: LoopFactory,
                                   make_file: Callable[..., Path]) -> None:
    """A peer that never reads: the flush itself hits the deadline, nothing of the
    file moved, and the writer is usable again."""
    body = make_file(BODY)

    async def main() -> None:
        peer = Peer()
        _, writer = await peer.connect()
        writer.write(BEFORE)
        with open(body, "rb") as f:
            with pytest.raises(zerocopy.TransferError) as info:
                await zerocopy.atransfer_to_writer(f, writer, timeout=0.2)
            assert isinstance(info.value, TimeoutError)
            assert info.value.transferred == 0
            assert f.tell() == 0
        writer.write(AFTER)
        peer.release.set()
        writer.write_eof()
        assert await peer.received == BEFORE + AFTER
        writer.close()
        await peer.close()

    run(loop_factory, main())
