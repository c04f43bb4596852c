"""Every code block in the documentation pages either runs or says that it does not.

``pycon`` blocks run as doctests (``--doctest-glob=*.md`` in pyproject.toml, fixtures in
docs/conftest.py).  Any other code block (shell commands that install, build or benchmark;
signatures) must open with a ``# not run`` comment, so a reader can tell it was not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_PAGES = sorted(Path(__file__).parent.glob("*.md"))
_FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.M | re.S)
# Not code: Sphinx directives, and plain text such as a directory tree.
_NOT_CODE = {"{eval-rst}", "{toctree}", "text"}


def _unchecked_blocks(page: Path) -> list[str]:
    bad = []
    for match in _FENCE.finditer(page.read_text()):
        language, body = match.group(1), match.group(2)
        if language == "pycon" or language in _NOT_CODE:
            continue
        if not body.startswith("# not run"):
            line = page.read_text().count("\n", 0, match.start()) + 1
            bad.append(f"{page.name}:{line}: ```{language} block neither runs nor says '# not run'")
    return bad


@pytest.mark.parametrize("page", _PAGES, ids=[p.name for p in _PAGES])
def test_every_code_block_runs_or_says_not_run(page: Path) -> None:
    assert _unchecked_blocks(page) == []


def test_pycon_blocks_are_doctests() -> None:
    # A pycon block without a prompt would render as an example yet test nothing.
    empty = [p.name for p in _PAGES for m in _FENCE.finditer(p.read_text())
             if m.group(1) == "pycon" and ">>> " not in m.group(2)]
    assert empty == []
