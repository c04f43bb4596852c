"""``probe()``: what this platform and process can do, found without moving data.

Each system call is asked with invalid fds: the kernel looks the fd up first, so
EBADF means the call exists and ENOSYS that it does not (EPERM: a seccomp filter
refuses it).  The native core asks with raw ``syscall(2)``; without the core, the
``os`` functions ask for the three Python exposes, and ``tee`` and ``vmsplice``
(which Python does not expose) are reported as unknown rather than guessed.

The answers that cost system calls are cached for the life of the process (the
kernel does not change under it); ``probe(refresh=True)`` asks again.  What the
environment decides (``ZEROCOPY_DISABLE``, ``ZEROCOPY_BACKEND``, ``use_backend``) is
read on every call, so a cached result never disagrees with ``plan()``.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
import threading
from dataclasses import dataclass

from . import _backends
from ._constants import BACKEND_ENV, DISABLE_ENV
from ._engine import plan as _plan
from ._types import Method

__all__ = ["Capabilities", "probe"]

SYSCALL_NAMES = ("sendfile", "splice", "tee", "vmsplice", "copy_file_range")
_METHOD_SYSCALL = {
    Method.SENDFILE: "sendfile",
    Method.SPLICE: "splice",
    Method.COPY_FILE_RANGE: "copy_file_range",
}
_PIPE_MAX_PATH = "/proc/sys/fs/pipe-max-size"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this platform and process can do (see :func:`probe`).

    For each system call: True (present), False (absent, or refused by a seccomp
    filter: see ``notes``), None (unknown: nobody could ask without moving data).
    """

    #: ``sys.platform``, e.g. ``"linux"``
    platform: str
    #: the kernel release (``os.uname().release``), ``""`` where there is none
    kernel: str
    #: ``sys.implementation.name`` and version, e.g. ``"cpython 3.13.1"``
    python: str
    #: the interpreter runs with a GIL (``sys._is_gil_enabled()``; always True before 3.13)
    gil: bool
    sendfile: bool | None
    splice: bool | None
    tee: bool | None
    vmsplice: bool | None
    copy_file_range: bool | None
    #: who answered for the system calls: ``"native core"`` or ``"os module"``
    probed_with: str
    #: capacity of a new pipe in bytes (F_GETPIPE_SZ), None where unknown
    pipe_size: int | None
    #: ``/proc/sys/fs/pipe-max-size``: the most F_SETPIPE_SZ grants without privilege
    pipe_max_size: int | None
    #: the backends that load here, best first
    backends: tuple[str, ...]
    #: ``(backend, why it does not load)`` for the others
    unavailable: tuple[tuple[str, str], ...]
    #: the backend ``transfer`` uses when none is named (env and ``use_backend`` applied);
    #: ``""`` when ``ZEROCOPY_BACKEND`` names one that does not load
    default_backend: str
    #: the methods ``ZEROCOPY_DISABLE`` turns off
    disabled: frozenset[Method]
    #: the methods the default backend can run here: offered by it, syscall not known
    #: to be absent, not disabled; in the order plans use them
    methods: tuple[Method, ...]
    #: anything a reader should know about the answers above
    notes: tuple[str, ...] = ()

    def syscalls(self) -> dict[str, bool | None]:
        """The system call answers by name."""
        return {name: getattr(self, name) for name in SYSCALL_NAMES}


@dataclass(frozen=True, slots=True)
class _Kernel:
    """The part worth caching: it costs system calls and cannot change."""

    platform: str
    kernel: str
    python: str
    syscalls: tuple[bool | None, ...]
    probed_with: str
    pipe_size: int | None
    pipe_max_size: int | None
    backends: tuple[str, ...]
    unavailable: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]


_lock = threading.Lock()
_kernel: _Kernel | None = None
_last: tuple[object, Capabilities] | None = None


def _verdict(name: str, err: int, notes: list[str]) -> bool | None:
    """What the errno of a call made with invalid fds says about the call."""
    if err == errno.EBADF:
        return True
    if err == errno.ENOSYS:
        return False
    if err == errno.EPERM:
        notes.append(f"{name}: EPERM with invalid fds: refused by a seccomp filter")
        return False
    if err < 0:
        notes.append(f"{name}: this build has no system call number for it")
        return None
    notes.append(f"{name}: unexpected answer {errno.errorcode.get(err, err)} "
                 "to invalid fds")
    return None


def _ask_os(name: str) -> int:
    """errno of the ``os`` function for *name* called with fd -1, or -1 when ``os``
    has no such function (Python does not expose tee or vmsplice)."""
    try:
        if name == "sendfile" and hasattr(os, "sendfile"):
            os.sendfile(-1, -1, 0, 1)
        elif name == "splice" and hasattr(os, "splice"):
            os.splice(-1, -1, 1)
        elif name == "copy_file_range" and hasattr(os, "copy_file_range"):
            os.copy_file_range(-1, -1, 1)
        else:
            return -1
    except OSError as exc:
        return exc.errno or 0
    return 0


def _probe_syscalls(notes: list[str]) -> tuple[tuple[bool | None, ...], str]:
    try:
        from . import _core
    except ImportError:
        pass
    else:
        answers = _core.probe_syscalls()
        return tuple(_verdict(n, answers[n], notes) for n in SYSCALL_NAMES), "native core"
    linux = sys.platform.startswith("linux")
    verdicts: list[bool | None] = []
    for name in SYSCALL_NAMES:
        err = _ask_os(name)
        if err < 0:
            # Outside Linux these calls do not exist; on Linux without the core,
            # nobody here can ask without moving data.
            verdicts.append(None if linux else False)
            if linux:
                notes.append(f"{name}: unknown without the native core")
        else:
            verdicts.append(_verdict(name, err, notes))
    return tuple(verdicts), "os module"


def _pipe_sizes() -> tuple[int | None, int | None]:
    size = None
    try:
        import fcntl

        get_size = getattr(fcntl, "F_GETPIPE_SZ", None)
        if get_size is not None:
            r, w = os.pipe()
            try:
                size = fcntl.fcntl(w, get_size)
            finally:
                os.close(r)
                os.close(w)
    except (ImportError, OSError):
        pass
    try:
        with open(_PIPE_MAX_PATH, "rb") as f:
            limit: int | None = int(f.read())
    except (OSError, ValueError):
        limit = None
    return size, limit


def _list_backends() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    loaded, missing = [], []
    for name in _backends.BACKENDS:
        try:
            _backends.load_backend(name)
        except ValueError as exc:
            missing.append((name, str(exc)))
        else:
            loaded.append(name)
    return tuple(loaded), tuple(missing)


def _ask_kernel() -> _Kernel:
    notes: list[str] = []
    syscalls, probed_with = _probe_syscalls(notes)
    pipe_size, pipe_max = _pipe_sizes()
    loaded, missing = _list_backends()
    uname = getattr(os, "uname", None)
    impl = sys.implementation
    version = ".".join(map(str, impl.version[:3]))
    for name, present in zip(SYSCALL_NAMES, syscalls):
        method = next((m for m, s in _METHOD_SYSCALL.items() if s == name), None)
        if present is False and method is not None:
            _plan.note_absent(method)  # what a transfer would learn from ENOSYS anyway
    return _Kernel(
        platform=sys.platform, kernel=uname().release if uname else "",
        python=f"{impl.name} {version}", syscalls=syscalls, probed_with=probed_with,
        pipe_size=pipe_size, pipe_max_size=pipe_max, backends=loaded,
        unavailable=missing, notes=tuple(notes),
    )


def _gil() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def _default_backend() -> tuple[str, str | None]:
    try:
        return _backends.resolve(None).NAME, None
    except ValueError as exc:
        return "", f"default backend: {exc}"


def _assemble(k: _Kernel) -> Capabilities:
    disabled = _plan.disabled_methods()
    default, problem = _default_backend()
    offered = _backends.load_backend(default).METHODS if default else frozenset()
    answers = dict(zip(SYSCALL_NAMES, k.syscalls))
    order = (Method.COPY_FILE_RANGE, Method.SENDFILE, Method.SPLICE, Method.READ_WRITE)
    methods = tuple(
        m for m in order
        if m in offered and m not in disabled
        and answers.get(_METHOD_SYSCALL.get(m, ""), True) is not False
    )
    return Capabilities(
        platform=k.platform, kernel=k.kernel, python=k.python, gil=_gil(),
        sendfile=answers["sendfile"], splice=answers["splice"], tee=answers["tee"],
        vmsplice=answers["vmsplice"], copy_file_range=answers["copy_file_range"],
        probed_with=k.probed_with, pipe_size=k.pipe_size, pipe_max_size=k.pipe_max_size,
        backends=k.backends, unavailable=k.unavailable, default_backend=default,
        disabled=disabled, methods=methods,
        notes=k.notes + ((problem,) if problem else ()),
    )


def probe(refresh: bool = False) -> Capabilities:
    """What this platform and process can do: system calls (asked without moving
    data), pipe sizes, backends, the kill switch, the GIL.  Cached; *refresh* asks
    the kernel again."""
    global _kernel, _last
    with _lock:
        if refresh or _kernel is None:
            _kernel = _ask_kernel()
            _last = None
        kernel = _kernel
        # What the environment decides is re-read every call (cheap), so the result
        # tracks ZEROCOPY_DISABLE, ZEROCOPY_BACKEND and use_backend like plan() does.
        key = (os.environ.get(DISABLE_ENV, ""), os.environ.get(BACKEND_ENV, ""),
               _backends.swapped_names(), _gil())
        if _last is not None and _last[0] == key:
            return _last[1]
        caps = _assemble(kernel)
        _last = (key, caps)
        return caps


def as_dict(caps: Capabilities) -> dict[str, object]:
    """*caps* as plain JSON-ready values (methods by name)."""
    out: dict[str, object] = {}
    for field in dataclasses.fields(caps):
        value = getattr(caps, field.name)
        if field.name == "disabled":
            value = sorted(m.value for m in value)
        elif field.name == "methods":
            value = [m.value for m in value]
        elif field.name == "unavailable":
            value = {name: why for name, why in value}
        elif isinstance(value, tuple):
            value = list(value)
        out[field.name] = value
    return out
