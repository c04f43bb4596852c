"""The "native" backend: the compiled core's loops (GIL released around each call)."""

from __future__ import annotations

import errno
from collections.abc import Callable

from . import _core
from ._errors import MethodDeclined
from ._job import Job
from ._types import Method

__all__ = ["NAME", "METHODS", "run"]

NAME = "native"

_LOOPS: dict[Method, Callable[[Job], None]] = {
    Method.COPY_FILE_RANGE: _core.copy_file_range,
    Method.SENDFILE: _core.sendfile,
    Method.SPLICE: _core.splice,
    Method.READ_WRITE: _core.read_write,
}
METHODS = frozenset(_LOOPS)


def run(method: Method, job: Job) -> None:
    """Run *method* on *job* in the compiled core."""
    loop = _LOOPS.get(method)
    if loop is None:  # pragma: no cover - every method is compiled in
        raise MethodDeclined(errno.ENOSYS, f"the core has no {method.value}")
    loop(job)
