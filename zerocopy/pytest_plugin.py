"""pytest plugin shipped with zerocopy (registered through the ``pytest11`` entry point).

Fixtures for users' own tests:

* ``zerocopy_backend``: the name of each available backend in turn, made the default
  for the test (``use_backend``), so code that calls ``zerocopy.transfer`` without a
  ``backend=`` runs once per backend.
* ``zerocopy_faults``: a :class:`FaultInjector`; ``zerocopy_faults.fail("sendfile",
  errno.EPIPE, skip=1)`` makes the second ``sendfile(2)`` from now fail with EPIPE,
  in every backend (the native core checks the same table in C).  Syscalls:
  sendfile, splice, copy_file_range, read, write, poll.  Cleared after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._backends import BACKENDS, BackendName, available_backends, use_backend
from ._faults import FaultInjector, Syscall, clear

__all__ = ["FaultInjector", "Syscall", "zerocopy_backend", "zerocopy_faults"]


def _param(name: str) -> object:
    return pytest.param(name, id=name, marks=pytest.mark.skipif(
        name not in available_backends(), reason=f"the {name!r} backend does not load here"))


@pytest.fixture(params=[_param(name) for name in BACKENDS])
def zerocopy_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each available backend in turn, made the default for the test."""
    name: BackendName = request.param
    with use_backend(name):
        yield name


@pytest.fixture
def zerocopy_faults() -> Iterator[FaultInjector]:
    """Inject errnos into zerocopy's system calls; every fault is cleared afterwards."""
    clear()
    try:
        yield FaultInjector()
    finally:
        clear()
