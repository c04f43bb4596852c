"""Backends: the method loops, the contract they keep, and the one place that picks one.

What lives here:

* ``job``: :class:`~zerocopy._backends.job.Job`, the state a driver hands a backend;
* ``native``: the compiled core's loops (``zerocopy/_core.pyx``);
* ``oscalls``: the same loops in Python over ``os.sendfile``, ``os.splice`` and
  ``os.copy_file_range`` (the "os" backend, the core's readable reference);
* ``portable``: a read/write loop that serves every fd on every platform, shared by
  the "os" backend as its last method;
* ``waits``: ``poll``-based waits for the two Python backends;
* this module: the :class:`Backend` protocol and backend selection.

May import: ``zerocopy._constants``, ``_types``, ``_errors``, ``_faults`` and the
compiled core; never the engine (``zerocopy._engine``), which imports this package.

A backend is a module with ``NAME``, ``METHODS``, ``LOOPS_IN_PYTHON`` and
``run(step, job)``; mypy checks each module against :class:`Backend`.  The default is
the first available of :data:`BACKENDS`, unless ``ZEROCOPY_BACKEND`` names one (then
it is that one or an error, never another), or :func:`use_backend` swapped it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from typing import Literal, Protocol, get_args

from .._constants import BACKEND_ENV
from .._types import Method, PlanStep
from .job import Job

__all__ = [
    "BACKENDS", "Backend", "BackendName", "available_backends", "default_is_swapped",
    "load_backend", "resolve", "use_backend",
]

#: The name of a backend, as ``backend=`` and ``ZEROCOPY_BACKEND`` take it.
BackendName = Literal["native", "os", "portable"]
#: every backend, best first
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)
_MODULES = {"native": ".native", "os": ".oscalls", "portable": ".portable"}


class Backend(Protocol):
    """What a driver needs of a backend."""

    @property
    def NAME(self) -> BackendName: ...  # noqa: N802 - a module constant

    @property
    def METHODS(self) -> frozenset[Method]: ...  # noqa: N802

    @property
    def LOOPS_IN_PYTHON(self) -> bool:  # noqa: N802
        """Its system calls are made from Python bytecode.  CPython runs a pending
        signal handler as soon as such a call returns, before the loop can count the
        bytes it moved, so a driver makes pollable fds non-blocking for these
        backends and the sleeping happens in ``poll``, which moves nothing
        (docs/transfer.md, "Waiting, deadlines, signals, progress")."""

    def run(self, step: PlanStep, job: Job) -> None:
        """Move bytes with *step* (its method, splicing through ``job``'s pipe when
        ``step.via_pipe``), keeping *job* up to date, until the job is finished,
        blocked or yields (``zerocopy._backends.job``); raise OSError, or
        MethodDeclined when the backend has no such method."""


_loaded: dict[str, Backend] = {}
_failures: dict[str, str] = {}
_lock = threading.Lock()
_swapped: list[str] = []


def load_backend(name: str) -> Backend:
    """Return the backend called *name*; ValueError if unknown or unavailable here."""
    backend = _loaded.get(name)
    if backend is not None:
        return backend
    if name not in _MODULES:
        raise ValueError(f"unknown zerocopy backend {name!r}; known: {', '.join(BACKENDS)}")
    if name in _failures:
        raise ValueError(f"zerocopy backend {name!r} is not available here: {_failures[name]}")
    try:
        module: Backend = importlib.import_module(_MODULES[name], __name__)
    except ImportError as exc:
        _failures[name] = str(exc)
        raise ValueError(f"zerocopy backend {name!r} is not available here: {exc}") from None
    _loaded[name] = module
    return module


def available_backends() -> tuple[BackendName, ...]:
    """The names of the backends that load on this platform, best first."""
    names: list[BackendName] = []
    for name in BACKENDS:
        try:
            load_backend(name)
        except ValueError:
            continue
        names.append(name)
    return tuple(names)


def _default() -> Backend:
    if _swapped:
        return load_backend(_swapped[-1])
    forced = os.environ.get(BACKEND_ENV)
    if forced:
        return load_backend(forced)  # never silently another one
    for name in BACKENDS:
        try:
            return load_backend(name)
        except ValueError:
            continue
    raise AssertionError("the portable backend always loads")  # pragma: no cover


def resolve(name: str | None) -> Backend:
    """The backend for one call: *name* if given, else the current default."""
    return _default() if name is None else load_backend(name)


def default_is_swapped() -> bool:
    """A :func:`use_backend` block is active (the fast path, which is the native
    backend's, steps aside; ``ZEROCOPY_BACKEND`` the core reads itself)."""
    return bool(_swapped)


def swapped_names() -> tuple[str, ...]:
    """The :func:`use_backend` stack, innermost last (``probe()`` keys its cache on it)."""
    return tuple(_swapped)


class use_backend(contextlib.ContextDecorator):  # noqa: N801 - reads as a function
    """Make *name* the default backend inside a ``with`` block or a decorated function.

    It swaps the process-wide default (every thread sees it) and nests; a per-call
    ``backend=`` still wins.  Raises ValueError at once if *name* is not available.
    """

    def __init__(self, name: BackendName) -> None:
        load_backend(name)
        self.name = name

    def __enter__(self) -> str:
        with _lock:
            _swapped.append(self.name)
        return self.name

    def __exit__(self, *exc: object) -> None:
        with _lock:
            # Remove our own entry even if another thread pushed after us.
            index = len(_swapped) - 1 - _swapped[::-1].index(self.name)
            del _swapped[index]
