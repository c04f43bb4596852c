"""The fast path: plain transfers from a regular file in one compiled call.

A small transfer should cost little more than its system call, so the core
classifies the two endpoints, looks the first method up in the decision table that
``plan.py`` owns (handed to the core here, at import), and runs it, all in one call
(``_core.fast_transfer``, in ``_core_include/fastpath.pxi``).  Anything it does not
serve, and any error before the first byte moved, returns None: the full path
(``driver.py``) then decides from scratch, so every rule lives there or in the
table.  Without the core there is no fast path.
"""

from __future__ import annotations

from collections.abc import Callable

from .._types import TransferResult
from .endpoints import set_position
from .plan import TABLE

__all__ = ["fast_transfer"]

_Fast = Callable[[object, object, "int | None", "int | None", "int | None"],
                 "TransferResult | None"]


def _no_fast_path(src: object, dst: object, count: int | None, offset: int | None,
                  dst_offset: int | None) -> TransferResult | None:
    return None


fast_transfer: _Fast
try:
    from .. import _core
except ImportError:  # the core is not built on this platform
    fast_transfer = _no_fast_path
else:
    _core.fast_path_setup(
        {(s.value, d.value): steps[0].method.value for (s, d), steps in TABLE.items()
         if not steps[0].via_pipe},
        set_position)
    fast_transfer = _core.fast_transfer
