"""The decision table: which methods to try for a pair of endpoints, in what order.

=================  ==========================================  ==========================
source             destination                                 methods, in order
=================  ==========================================  ==========================
regular file       regular file                                copy_file_range, sendfile,
                                                               read/write
regular file       stream socket                               sendfile, splice (through
                                                               a pipe of ours), read/write
regular file       pipe                                        sendfile, splice (direct),
                                                               read/write
regular file       anything else (tty, /dev/null, ...)         sendfile, read/write
socket             socket, regular file                        splice (through a pipe of
                                                               ours), read/write
pipe               anything                                    splice (direct), read/write
anything else      pipe                                        splice (direct), read/write
anything else      anything else                               read/write
=================  ==========================================  ==========================

:data:`TABLE` is built once, at import, for every pair of kinds; both the full path
(:func:`make_plan`) and the compiled fast path (``_engine/fastpath.py`` hands the
core each pair's first step) read it, so the choice is made here alone.

Left out for a pair, with the reason in ``Plan.skipped``: every kernel method when
the destination is an O_APPEND regular file (copy_file_range fails EBADF, sendfile
and splice EINVAL on it); sendfile when ``dst_offset`` is given (it has no
destination offset); methods the backend lacks; methods turned off by
``ZEROCOPY_DISABLE``; methods whose system call this kernel lacks (ENOSYS seen).
"""

from __future__ import annotations

import itertools
import os
import warnings

from .._constants import DISABLE_ENV
from .._types import EndpointKind, Method, Plan, PlanStep
from .endpoints import Endpoint

__all__ = ["TABLE", "disabled_methods", "make_plan", "note_absent"]

_FILE = EndpointKind.FILE
_SOCKET = EndpointKind.SOCKET
_PIPE = EndpointKind.PIPE

_CFR = PlanStep(Method.COPY_FILE_RANGE, "file to file inside the kernel (may reflink)")
_SENDFILE = PlanStep(Method.SENDFILE, "from the source's page cache, no user-space copy")
_SPLICE_DIRECT = PlanStep(Method.SPLICE, "one side is a pipe: one splice per chunk")
_SPLICE_VIA_PIPE = PlanStep(Method.SPLICE, "through a pipe of ours: two splices per chunk",
                            via_pipe=True)
_READ_WRITE = PlanStep(Method.READ_WRITE, "copies through user space; serves any fd")


def _candidates(src: EndpointKind, dst: EndpointKind) -> tuple[PlanStep, ...]:
    """The table above, for one pair of kinds."""
    if src is _FILE:
        if dst is _FILE:
            return (_CFR, _SENDFILE, _READ_WRITE)
        if dst is _SOCKET:
            return (_SENDFILE, _SPLICE_VIA_PIPE, _READ_WRITE)
        if dst is _PIPE:
            return (_SENDFILE, _SPLICE_DIRECT, _READ_WRITE)
        return (_SENDFILE, _READ_WRITE)
    if src is _PIPE or dst is _PIPE:
        return (_SPLICE_DIRECT, _READ_WRITE)
    if src is _SOCKET and dst in (_SOCKET, _FILE):
        return (_SPLICE_VIA_PIPE, _READ_WRITE)
    return (_READ_WRITE,)


#: (source kind, destination kind) -> the methods to try, best first, before skipping
TABLE: dict[tuple[EndpointKind, EndpointKind], tuple[PlanStep, ...]] = {
    (s, d): _candidates(s, d) for s, d in itertools.product(EndpointKind, repeat=2)
}

# Syscalls that answered ENOSYS: absent for the life of the process (capability
# knowledge that may be cached, unlike "this pair can't": docs/transfer.md, "Errors
# and fallback").
_absent: set[Method] = set()
_disabled_cache: tuple[str, frozenset[Method]] = ("", frozenset())


def note_absent(method: Method) -> None:
    """Remember that *method*'s system call does not exist in this kernel."""
    _absent.add(method)


def absent_methods() -> frozenset[Method]:
    """The methods whose system call answered ENOSYS in this process."""
    return frozenset(_absent)


def disabled_methods() -> frozenset[Method]:
    """The methods ``ZEROCOPY_DISABLE`` turns off (comma-separated method names)."""
    global _disabled_cache
    raw = os.environ.get(DISABLE_ENV, "")
    if raw == _disabled_cache[0]:
        return _disabled_cache[1]
    methods = set()
    for word in filter(None, (w.strip().lower() for w in raw.split(","))):
        try:
            methods.add(Method(word))
        except ValueError:
            warnings.warn(f"{DISABLE_ENV}: unknown method {word!r} ignored "
                          f"(known: {', '.join(m.value for m in Method)})",
                          RuntimeWarning, stacklevel=3)
    _disabled_cache = (raw, frozenset(methods))
    return _disabled_cache[1]


def _skip_reason(step: PlanStep, dst: Endpoint, dst_offset: bool,
                 methods: frozenset[Method], disabled: frozenset[Method]) -> str | None:
    method = step.method
    if method not in methods:
        return "this backend does not have it"
    if method in disabled:
        return f"turned off by {DISABLE_ENV}"
    if method in _absent:
        return "this kernel does not have it (ENOSYS)"
    if method is not Method.READ_WRITE and dst.append and dst.kind is _FILE:
        return "the destination is O_APPEND, which the kernel methods refuse"
    if method is Method.SENDFILE and dst_offset and dst.kind is _FILE:
        return "sendfile cannot write at an explicit destination offset"
    return None


def make_plan(backend_name: str, methods: frozenset[Method], src: Endpoint,
              dst: Endpoint, *, dst_offset: bool = False) -> Plan:
    """The plan for *src* → *dst* with a backend offering *methods*."""
    disabled = disabled_methods()
    steps, skipped = [], []
    for step in TABLE[src.kind, dst.kind]:
        reason = _skip_reason(step, dst, dst_offset, methods, disabled)
        if reason is None:
            steps.append(step)
        else:
            skipped.append(PlanStep(step.method, reason, step.via_pipe))
    return Plan(backend_name, src.kind, dst.kind, tuple(steps), tuple(skipped))
