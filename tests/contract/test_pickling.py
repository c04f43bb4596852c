"""zerocopy's errors cross process boundaries intact (pickle, ProcessPoolExecutor)."""

from __future__ import annotations

import errno
import multiprocessing
import os
import pickle
import socket
import tempfile
from concurrent.futures import ProcessPoolExecutor

import pytest

import zerocopy
from zerocopy import BackendName, Fallback, Method, TransferError, UnsupportedTransfer
from zerocopy._errors import error_from_errno, transfer_error


@pytest.mark.parametrize("err", [errno.EPIPE, errno.ECONNRESET, errno.ETIMEDOUT, errno.ENOSPC,
                                 errno.EIO, 0])
def test_transfer_error_round_trips(err: int) -> None:
    gave_up = (Fallback(Method.SENDFILE, errno.EINVAL, "Invalid argument", 1000),)
    exc = transfer_error(err, Method.SPLICE, 1234, b"left", gave_up)
    exc.add_note("zerocopy: a note")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert isinstance(back, TransferError) and isinstance(back, type(OSError(err, "")))
    assert (back.errno, back.strerror, back.transferred, back.residue, back.method) == (
        exc.errno, exc.strerror, 1234, b"left", Method.SPLICE)
    assert back.__notes__ == ["zerocopy: a note"] and back.fallbacks == gave_up


def test_unsupported_transfer_round_trips() -> None:
    exc = error_from_errno(errno.EINVAL, "no method", kind=UnsupportedTransfer)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and isinstance(back, UnsupportedTransfer)
    assert back.errno == errno.EINVAL and str(back) == str(exc)


def _send_to_a_closed_peer(backend: BackendName) -> int:
    """Runs in a worker process: a transfer whose peer is gone raises TransferError."""
    with tempfile.TemporaryFile() as src:
        src.write(os.urandom(1 << 20))
        src.seek(0)
        a, b = socket.socketpair()
        b.close()
        with a:
            return zerocopy.transfer(src, a, backend=backend).transferred


def test_a_worker_process_error_reaches_the_parent(backend: BackendName) -> None:
    # A user's first try: before, the parent never got the error (it could not be
    # rebuilt there) and future.result() hung.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        future = pool.submit(_send_to_a_closed_peer, backend)
        with pytest.raises(TransferError) as info:
            future.result(timeout=60)
    err = info.value
    assert isinstance(err, BrokenPipeError) and err.errno == errno.EPIPE
    assert err.transferred == 0 and err.residue == b""
