"""zerocopy: move bytes between file descriptors with the fewest copies the kernel
allows, and say how.

``transfer(src, dst)`` picks the best method for the pair (copy_file_range,
sendfile, splice, or a plain read/write loop), runs it with the GIL released, falls
back safely before the first byte moves, and returns a :class:`TransferResult`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._backend import available_backends as available_backends
from ._backend import use_backend as use_backend
from ._errors import TransferError as TransferError
from ._errors import UnsupportedTransfer as UnsupportedTransfer
from ._errors import ZeroCopyError as ZeroCopyError
from ._fd import BorrowedFd as BorrowedFd
from ._fd import OwnedFd as OwnedFd
from ._probe import Capabilities as Capabilities
from ._probe import probe as probe
from ._transfer import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from ._transfer import plan as plan
from ._transfer import transfer as transfer
from ._types import EndpointKind as EndpointKind
from ._types import Fallback as Fallback
from ._types import Method as Method
from ._types import Plan as Plan
from ._types import PlanStep as PlanStep
from ._types import TransferResult as TransferResult

if TYPE_CHECKING:
    from ._astream import atransfer_to_writer as atransfer_to_writer
    from ._async import atransfer as atransfer

__version__ = "0.1.0"

# The asyncio half loads on first use: importing asyncio costs tens of milliseconds
# that a blocking server or a command-line tool should not pay.
_LAZY = {"atransfer": "._async", "atransfer_to_writer": "._astream"}

__all__ = [
    "BorrowedFd",
    "Capabilities",
    "DEFAULT_CHUNK_SIZE",
    "EndpointKind",
    "Fallback",
    "Method",
    "OwnedFd",
    "Plan",
    "PlanStep",
    "TransferError",
    "TransferResult",
    "UnsupportedTransfer",
    "ZeroCopyError",
    "atransfer",
    "atransfer_to_writer",
    "available_backends",
    "plan",
    "probe",
    "transfer",
    "use_backend",
]

# Tracebacks and reprs say zerocopy.X, not zerocopy._module.X.
for _name in __all__:
    if _name not in _LAZY:
        _obj = globals()[_name]
        if getattr(_obj, "__module__", "").startswith("zerocopy._"):
            _obj.__module__ = __name__
del _name, _obj


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(importlib.import_module(module, __name__), name)
    value.__module__ = __name__
    globals()[name] = value
    return value
