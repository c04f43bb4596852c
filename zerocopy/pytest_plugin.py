"""pytest plugin shipped with zerocopy (registered through the ``pytest11`` entry point).

Fixtures for users' own tests:

* ``zerocopy_backend``: the name of each available backend in turn, made the default
  for the test (``use_backend``), so code that calls ``zerocopy.transfer`` without a
  ``backend=`` runs once per backend.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._backend import BACKENDS, available_backends, use_backend

__all__ = ["zerocopy_backend"]


def _param(name: str) -> object:
    return pytest.param(name, id=name, marks=pytest.mark.skipif(
        name not in available_backends(), reason=f"the {name!r} backend does not load here"))


@pytest.fixture(params=[_param(name) for name in BACKENDS])
def zerocopy_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each available backend in turn, made the default for the test."""
    name: str = request.param
    with use_backend(name):
        yield name
