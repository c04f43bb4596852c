"""Backends: the contract they keep, and the one place that picks one.

A backend is a module with ``NAME``, ``METHODS`` and ``run(method, job)``; mypy
checks each module against :class:`Backend`.  The default is the first available of
:data:`BACKENDS`, unless ``ZEROCOPY_BACKEND`` names one (then it is that one or an
error, never another), or :func:`use_backend` swapped it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Iterator
from typing import Protocol

from ._job import Job
from ._types import Method

__all__ = ["BACKENDS", "Backend", "available_backends", "load_backend", "resolve", "use_backend"]

#: every backend, best first
BACKENDS = ("native", "os", "portable")
_MODULES = {"native": "._native", "os": "._osbackend", "portable": "._portable"}
ENV_VAR = "ZEROCOPY_BACKEND"


class Backend(Protocol):
    """What the transfer layer needs of a backend."""

    @property
    def NAME(self) -> str: ...  # noqa: N802 - a module constant

    @property
    def METHODS(self) -> frozenset[Method]: ...  # noqa: N802

    def run(self, method: Method, job: Job) -> None:
        """Move bytes with *method*, keeping *job* up to date; raise OSError or
        MethodDeclined when it cannot."""


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
        module: Backend = importlib.import_module(_MODULES[name], __package__)
    except ImportError as exc:
        _failures[name] = str(exc)
        raise ValueError(f"zerocopy backend {name!r} is not available here: {exc}") from None
    _loaded[name] = module
    return module


def available_backends() -> tuple[str, ...]:
    """The names of the backends that load on this platform, best first."""
    names = []
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
    forced = os.environ.get(ENV_VAR)
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


class use_backend(contextlib.ContextDecorator):  # noqa: N801 - reads as a function
    """Make *name* the default backend inside a ``with`` block or a decorated function.

    It swaps the process-wide default (every thread sees it) and nests; a per-call
    ``backend=`` still wins.  Raises ValueError at once if *name* is not available.
    """

    def __init__(self, name: str) -> None:
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


@contextlib.contextmanager
def _no_swaps() -> Iterator[None]:  # pragma: no cover - test helper
    saved = list(_swapped)
    _swapped.clear()
    try:
        yield
    finally:
        _swapped[:] = saved
