"""The "native" backend: the compiled core's loops (``zerocopy/_core.pyx``), in C, with
the GIL released around the system calls."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Literal

from .. import _core
from .._errors import MethodDeclined
from .._types import Method, PlanStep
from .job import Job

__all__ = ["LOOPS_IN_PYTHON", "METHODS", "NAME", "run"]

NAME: Literal["native"] = "native"
LOOPS_IN_PYTHON = False

# (method, via our pipe) -> the core's loop
_LOOPS: dict[tuple[Method, bool], Callable[[Job], None]] = {
    (Method.COPY_FILE_RANGE, False): _core.copy_file_range,
    (Method.SENDFILE, False): _core.sendfile,
    (Method.SPLICE, False): _core.splice_direct,
    (Method.SPLICE, True): _core.splice_via_pipe,
    (Method.READ_WRITE, False): _core.read_write,
}
METHODS = frozenset(method for method, _ in _LOOPS)


def run(step: PlanStep, job: Job) -> None:
    """Run *step* on *job* in the compiled core."""
    loop = _LOOPS.get((step.method, step.via_pipe))
    if loop is None:  # pragma: no cover - every method is compiled in
        raise MethodDeclined(errno.ENOSYS, f"the core has no {step.method.value}")
    loop(job)
