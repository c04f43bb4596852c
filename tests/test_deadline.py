"""``timeout=`` bounds the whole transfer even when nothing ever blocks."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import zerocopy


def test_deadline_ends_a_transfer_that_never_waits(backend: str, scratch: Path) -> None:
    src_path = scratch / "big"
    with open(src_path, "wb") as f:
        f.truncate(4 << 30)  # sparse: 4 GiB of zeros that cost no memory
    with open(src_path, "rb") as src, open(scratch / "copy", "wb") as dst:
        with pytest.raises(zerocopy.TransferError) as info:
            zerocopy.transfer(src, dst, timeout=0.05, chunk_size=1 << 20, backend=backend)
        err = info.value
        assert isinstance(err, TimeoutError)
        assert err.errno == errno.ETIMEDOUT
        assert 0 < err.transferred < 4 << 30
        assert src.tell() == err.transferred  # the position matches what was delivered
        assert os.fstat(dst.fileno()).st_size == err.transferred


def test_deadline_not_reached_is_no_error(backend: str, make_file: Callable[..., Path]) -> None:
    data = os.urandom(3 << 20)
    with open(make_file(data), "rb") as src, open(make_file(), "wb+") as dst:
        result = zerocopy.transfer(src, dst, timeout=60, chunk_size=1 << 20, backend=backend)
        dst.seek(0)
        assert dst.read() == data
    assert result.transferred == len(data) and result.eof
