"""``transfer()`` and ``plan()``: the blocking entry points of the engine."""

from __future__ import annotations

import os
from collections.abc import Callable

from .. import _backends, _fd
from .._backends import BackendName
from .._errors import Interrupted, TransferError, is_method_error
from .._types import Fallback, Plan, TransferResult
from . import endpoints
from .driver import BlockingDriver, check_numbers, check_offsets, method_cannot
from .fastpath import fast_transfer
from .plan import make_plan

__all__ = ["plan", "transfer"]


def plan(src: object, dst: object, *, offset: int | None = None,
         dst_offset: int | None = None, backend: BackendName | None = None) -> Plan:
    """The methods :func:`transfer` would try for *src* → *dst*, in order, and why.

    Nothing moves, and nothing is flushed or re-positioned either.  It refuses what
    ``transfer`` would refuse for these arguments, with the same errors.

    Args:
        src, dst: the endpoints, as :func:`transfer` takes them.
        offset, dst_offset: as for :func:`transfer` (``dst_offset`` leaves sendfile out
            of a file-to-file plan).
        backend: the backend whose plan to show; the default one when None.

    Returns:
        A :class:`Plan`: the steps to try, best first, and the methods left out with
        the reason.
    """
    check_numbers(None, offset, dst_offset, None, None)
    chosen = _backends.resolve(backend)
    with _fd.pinned(src, dst) as (src, dst, _):
        s = endpoints.classify(src, "src", want_write=False)
        d = endpoints.classify(dst, "dst", want_write=True)
    check_offsets(s, d, offset, dst_offset)
    return make_plan(chosen.NAME, chosen.METHODS, s, d, dst_offset=dst_offset is not None)


def transfer(src: object, dst: object, count: int | None = None, *,
             offset: int | None = None, dst_offset: int | None = None,
             timeout: float | None = None, chunk_size: int | None = None,
             progress: Callable[[int], object] | None = None,
             backend: BackendName | None = None) -> TransferResult:
    """Move up to *count* bytes from *src* to *dst* with the best method the kernel
    offers for the pair, and say how.

    The methods are tried in the order of the decision table (docs/transfer.md):
    copy_file_range, sendfile, splice, read/write.  One that cannot serve the pair
    gives up before moving a byte and the next is tried (``TransferResult.fallbacks``
    says which and why).  System calls run with the GIL released.

    Args:
        src: what to read: an int fd, an object with ``fileno()`` (a binary file,
            ``socket.socket``, a pipe end), an :class:`OwnedFd` or :class:`BorrowedFd`.
            A buffered reader's logical position and read-ahead are honoured.
        dst: where to write, taken like *src*; a buffered writer is flushed first.
            Neither endpoint is ever closed.
        count: at most this many bytes; None moves until the source's end of file.
            An early end of file is not an error (``eof=True``).
        offset: read at this absolute position of a seekable source, leaving its
            position untouched (pread); None reads from the current position and
            advances it by exactly what was delivered, also when the transfer fails.
        dst_offset: write at this absolute position of a seekable destination,
            leaving its position untouched; None writes at (and advances) its position.
        timeout: seconds for the whole call (a deadline); a socket's own timeout
            bounds each single wait either way.
        chunk_size: most bytes per system call and per *progress* call (default
            :data:`DEFAULT_CHUNK_SIZE`, 8 MiB).
        progress: called with the bytes delivered so far after each chunk; an
            exception from it stops the transfer like any error.
        backend: ``"native"``, ``"os"`` or ``"portable"``; None uses the default
            (:func:`use_backend`, ``ZEROCOPY_BACKEND``).

    Returns:
        A :class:`TransferResult`: bytes delivered, the method that delivered them,
        the backend, whether the source reported end of file, and the fallbacks.

    Raises:
        TypeError, ValueError: bad arguments, or an endpoint refused up front (a
            text-mode file, a datagram or TLS socket, an offset on a pipe); nothing
            moved.
        ZeroCopyError: an endpoint is unusable (a closed fd: ``EBADF``; a directory:
            also ``IsADirectoryError``); nothing moved.
        UnsupportedTransfer: no method of the backend can serve the pair.
        TransferError: a method failed after the plan started; also the builtin
            ``OSError`` subclass for the errno (``BrokenPipeError``, ``TimeoutError``,
            ...), with ``.transferred`` and ``.residue``.
        BaseException: whatever a signal handler (Ctrl-C) or *progress* raised,
            unchanged but for ``.transferred``, ``.residue`` and a note
            (:class:`Interrupted`).
    """
    if (timeout is None and progress is None and chunk_size is None and backend is None
            and not _backends.default_is_swapped()):
        try:
            result = fast_transfer(src, dst, count, offset, dst_offset)
        except TransferError as exc:
            if not _fast_path_can_resume(exc):
                raise
            # The fast path's source is a regular file: resume where it stopped.
            return _resume_after(exc, src, dst, count, offset)
        if result is not None:
            return result
    with BlockingDriver.opened(src, dst, count, offset, dst_offset, timeout, chunk_size,
                               progress, backend) as driver:
        return driver.run()


def _fast_path_can_resume(exc: TransferError) -> bool:
    """The fast path's method itself said "can't" part way (the core marks such a
    TransferError as a method's call: a failed wait, poll's EAGAIN, never is)."""
    return (exc.method is not None and is_method_error(exc)
            and method_cannot(exc.method, exc.errno or 0))


def _resume_after(exc: TransferError, src: object, dst: object, count: int | None,
                  offset: int | None) -> TransferResult:
    """The fast path's method failed part way with "this method can't" (EIO from
    copy_file_range on CIFS, say): the full path goes on from the first byte not
    delivered without that method, and the result (or error) counts both parts."""
    assert exc.method is not None
    done = exc.transferred
    gave_up = Fallback(exc.method, exc.errno or 0, os.strerror(exc.errno or 0), done)
    rest_count = None if count is None else count - done
    rest_offset = None if offset is None else offset + done
    try:
        with BlockingDriver.opened(src, dst, rest_count, rest_offset, None, None, None,
                                   None, None, skip=exc.method) as driver:
            rest = driver.run()
    except TransferError as later:
        later.transferred += done
        later.fallbacks = (gave_up, *later.fallbacks)
        raise
    except BaseException as later:
        if isinstance(later, Interrupted):
            later.transferred += done
        raise
    return TransferResult(done + rest.transferred, rest.method, rest.backend, rest.eof,
                          (gave_up, *rest.fallbacks))
