"""The relay tests' fixture: the compiled pump and the portable loop, each in turn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from zerocopy._relay import aio as relay_aio
from zerocopy._relay import pump as relay_pump


@pytest.fixture(params=["core", "portable"])
def implementation(request: pytest.FixtureRequest,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs against the compiled pump and against the portable loop."""
    if request.param == "portable":
        monkeypatch.setattr(relay_pump, "_core_pump", lambda: None)
        monkeypatch.setattr(relay_aio, "_core_pump", lambda: None)
    yield str(request.param)
