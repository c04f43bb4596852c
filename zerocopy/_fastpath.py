"""The fast path: plain file -> file/socket/pipe transfers in one compiled call.

A small transfer should cost little more than its system call, so the core checks,
classifies, plans and runs the commonest shapes in one call (``_core.fast_transfer``,
in ``_fastpath.pxi``), or answers None and the full path in ``_transfer.py`` takes
over from scratch.  Without the core there is no fast path.
"""

from __future__ import annotations

from collections.abc import Callable

from ._types import TransferResult

__all__ = ["try_fast"]

_Fast = Callable[[object, object, "int | None", "int | None", "int | None"],
                 "TransferResult | None"]


def _no_fast_path(src: object, dst: object, count: int | None, offset: int | None,
                  dst_offset: int | None) -> TransferResult | None:
    return None


try_fast: _Fast
try:
    from ._core import fast_transfer as try_fast
except ImportError:  # the core is not built on this platform
    try_fast = _no_fast_path
