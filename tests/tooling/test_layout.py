"""The checkout itself: running the suite the wrong way fails at once, saying why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (_REPO / "zerocopy" / "_core.pyx").exists(),
                    reason="not run from a checkout")
def test_python_m_pytest_from_the_root_stops_with_one_explanation() -> None:
    # python -m pytest puts the repository root first on sys.path: the uncompiled
    # source tree is what "import zerocopy" finds there.
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/cli"], cwd=_REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "without its compiled core" in done.stdout + done.stderr
    assert "passed" not in done.stdout
