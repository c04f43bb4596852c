"""zerocopy: move bytes between file descriptors with the fewest copies the kernel
allows, and say how.

``transfer(src, dst)`` picks the best method for the pair (copy_file_range,
sendfile, splice, or a plain read/write loop), runs it with the GIL released, falls
back safely before the first byte moves, and returns a :class:`TransferResult`.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING

from ._backends import BackendName as BackendName
from ._backends import available_backends as available_backends
from ._backends import use_backend as use_backend
from ._constants import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from ._engine.transfer import plan as plan
from ._engine.transfer import transfer as transfer
from ._errors import Interrupted as Interrupted
from ._errors import TransferError as TransferError
from ._errors import UnsupportedTransfer as UnsupportedTransfer
from ._errors import ZeroCopyError as ZeroCopyError
from ._fd import BorrowedFd as BorrowedFd
from ._fd import FdLike as FdLike
from ._fd import OwnedFd as OwnedFd
from ._probe import Capabilities as Capabilities
from ._probe import probe as probe
from ._relay import RelayError as RelayError
from ._relay import RelayResult as RelayResult
from ._relay import relay as relay
from ._types import EndpointKind as EndpointKind
from ._types import Fallback as Fallback
from ._types import Method as Method
from ._types import Plan as Plan
from ._types import PlanStep as PlanStep
from ._types import TransferResult as TransferResult

if TYPE_CHECKING:
    __version__: str
    from ._aio.driver import DiskMode as DiskMode
    from ._aio.driver import atransfer as atransfer
    from ._relay.aio import arelay as arelay
    from ._aio.streams import atransfer_to_writer as atransfer_to_writer

# The asyncio half loads on first use: importing asyncio costs tens of milliseconds
# that a blocking server or a command-line tool should not pay.
_LAZY = {"atransfer": "._aio.driver", "atransfer_to_writer": "._aio.streams",
         "DiskMode": "._aio.driver", "arelay": "._relay.aio"}

__all__ = [
    "BackendName",
    "BorrowedFd",
    "Capabilities",
    "DEFAULT_CHUNK_SIZE",
    "DiskMode",
    "EndpointKind",
    "Fallback",
    "FdLike",
    "Interrupted",
    "Method",
    "OwnedFd",
    "Plan",
    "PlanStep",
    "RelayError",
    "RelayResult",
    "TransferError",
    "TransferResult",
    "UnsupportedTransfer",
    "ZeroCopyError",
    "arelay",
    "atransfer",
    "atransfer_to_writer",
    "available_backends",
    "plan",
    "probe",
    "relay",
    "transfer",
    "use_backend",
]

# Tracebacks and reprs say zerocopy.X, not zerocopy._module.X.
for _name in __all__:
    if _name not in _LAZY:
        _obj = globals()[_name]
        if isinstance(_obj, type) or callable(_obj):
            if getattr(_obj, "__module__", "").startswith("zerocopy._"):
                _obj.__module__ = __name__
del _name, _obj


def __getattr__(name: str) -> object:
    if name == "__version__":
        # Defined once, in meson.build; read from the installed metadata on first use.
        from importlib.metadata import version

        found = globals()[name] = version(__name__)
        return found
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(importlib.import_module(module, __name__), name)
    if isinstance(value, type) or callable(value):
        with contextlib.suppress(AttributeError, TypeError):  # typing aliases refuse
            value.__module__ = __name__
    globals()[name] = value
    return value
