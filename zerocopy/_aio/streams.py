"""``atransfer_to_writer()``: zero-copy into an ``asyncio.StreamWriter`` without
reordering bytes.

A transport buffers what ``write()`` could not send at once; bytes written to its
socket behind its back would overtake them (aio-libs/aiohttp#1093: headers arrived
after the body).  So, like asyncio's own ``loop.sendfile`` (selector_events
``_sendfile_native``), this helper refuses new writes, pauses reading, waits until
the transport's buffer is empty, transfers, and restores everything.  It works
through public transport API (write-buffer limits and ``drain``), so it serves the
default loop and uvloop alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor

from .._backends import BackendName
from .driver import DiskMode, atransfer
from .._errors import TransferError, error_from_errno
from .._types import TransferResult

__all__ = ["atransfer_to_writer"]

_WRITE_METHODS = ("write", "writelines", "write_eof")
#: id() of the transports with a transfer in progress (one at a time per transport)
_busy: set[int] = set()


def _transport_fd(transport: asyncio.BaseTransport) -> int:
    """The fd the transport writes to; refuse TLS (bytes on the fd would bypass it)."""
    if transport.get_extra_info("sslcontext") is not None:
        raise ValueError("atransfer_to_writer: TLS transports are refused (bytes written "
                         "to the socket would bypass encryption); use loop.sendfile(), "
                         "which copies through TLS")
    end = transport.get_extra_info("socket")
    if end is None:
        end = transport.get_extra_info("pipe")  # subprocess and connect_write_pipe
    fileno = getattr(end, "fileno", None)
    if fileno is None:
        raise ValueError(f"atransfer_to_writer: {type(transport).__name__} exposes no "
                         "socket or pipe to write to")
    fd: int = fileno()
    if fd < 0:
        raise ConnectionResetError("atransfer_to_writer: the transport is closed")
    return fd


def _refuse_write(*args: object, **kwargs: object) -> None:
    raise RuntimeError("unable to write: a zerocopy transfer into this stream is in progress")


@contextlib.contextmanager
def _writes_refused(writer: asyncio.StreamWriter,
                    transport: asyncio.BaseTransport) -> Iterator[None]:
    """Make write()/writelines()/write_eof() raise RuntimeError for the duration, on
    the StreamWriter and, where the transport is a Python object (the default loop),
    on the transport too; uvloop's compiled transports cannot be patched."""
    key = id(transport)
    if key in _busy:
        raise RuntimeError("a zerocopy transfer into this transport is already in progress")
    _busy.add(key)
    patched: list[tuple[object, str]] = []
    targets: tuple[object, ...] = (writer, transport)
    try:
        for obj in targets:
            for name in _WRITE_METHODS:
                try:
                    setattr(obj, name, _refuse_write)
                except (AttributeError, TypeError):
                    continue
                patched.append((obj, name))
        yield
    finally:
        for obj, name in patched:
            with contextlib.suppress(AttributeError):
                delattr(obj, name)  # the class's own method shows through again
        _busy.discard(key)


@contextlib.contextmanager
def _reading_paused(transport: asyncio.BaseTransport) -> Iterator[None]:
    """Pause reading so the protocol cannot react (and try to write) mid-transfer,
    as loop.sendfile does; resume only if it was reading before."""
    try:
        was_reading = bool(transport.is_reading())  # type: ignore[attr-defined]
        if was_reading:
            transport.pause_reading()  # type: ignore[attr-defined]
    except (AttributeError, NotImplementedError):  # write-only pipe transports
        was_reading = False
    try:
        yield
    finally:
        if was_reading and not transport.is_closing():
            transport.resume_reading()  # type: ignore[attr-defined]


async def _flush(writer: asyncio.StreamWriter, transport: asyncio.WriteTransport,
                 timeout: float | None) -> None:
    """Wait until every byte written before is handed to the kernel.  With both
    water marks at 0, the protocol is paused while anything is buffered and resumed
    when the buffer is empty, so drain() returns exactly then.  The flush counts
    against the call's deadline."""
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await asyncio.wait_for(writer.drain(), timeout)
    except TimeoutError:
        raise error_from_errno(errno.ETIMEDOUT, "atransfer_to_writer: the transport's "
                               "buffer did not empty before the deadline",
                               kind=TransferError) from None
    if transport.get_write_buffer_size():
        raise RuntimeError(f"{type(transport).__name__} did not flush its write buffer; "
                           "refusing to write behind it")


async def atransfer_to_writer(src: object, writer: asyncio.StreamWriter,
                              count: int | None = None, *, offset: int | None = None,
                              timeout: float | None = None, chunk_size: int | None = None,
                              progress: Callable[[int], object] | None = None,
                              backend: BackendName | None = None, disk: DiskMode = "auto",
                              executor: Executor | None = None) -> TransferResult:
    """Transfer *src* into *writer*'s socket or pipe, after everything written to
    *writer* before and before anything written after; see docs/async.md."""
    transport = writer.transport
    if transport.is_closing():
        raise ConnectionResetError("atransfer_to_writer: the transport is closing")
    fd = _transport_fd(transport)
    with _writes_refused(writer, transport), _reading_paused(transport):
        low, high = transport.get_write_buffer_limits()
        try:
            start = time.monotonic()
            await _flush(writer, transport, timeout)
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - start))
            # Our own fd for the same socket: the loop refuses add_writer on an fd a
            # transport owns, and if the transport closes its fd mid-transfer, the
            # number could be reused by another file; the dup keeps it ours.
            dup = os.dup(fd)
            try:
                return await atransfer(src, dup, count, offset=offset, timeout=timeout,
                                       chunk_size=chunk_size, progress=progress,
                                       backend=backend, disk=disk, executor=executor)
            finally:
                os.close(dup)
        finally:
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=high, low=low)
