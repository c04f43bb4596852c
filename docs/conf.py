"""Sphinx configuration for the zerocopy documentation site.

Build: ``pip install '.[docs]' && sphinx-build -W --keep-going -b html docs docs/_build/html``.
The pages are MyST Markdown; the API reference is autodoc over the *installed* package, so
the compiled core's signatures are the ones a user gets.
"""

from __future__ import annotations

import sys as _sys
from importlib.metadata import version as _version

from sphinx.application import Sphinx
from sphinx.ext.napoleon import _process_docstring as _napoleon_process
from sphinx.pycode import ModuleAnalyzer as _ModuleAnalyzer

import zerocopy as _zerocopy

project = "zerocopy"
author = "zerocopy contributors"
copyright = "zerocopy contributors"
release = _version("zerocopy")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",  # the docstrings of transfer() and plan() use Google sections
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Headings become link targets, so pages can link to each other's sections.
myst_heading_anchors = 3

autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}

# CI has no network beyond the package registries, so intersphinx cannot fetch
# https://docs.python.org/3/objects.inv at build time: the stdlib inventory (Python 3.11)
# is committed under docs/_intersphinx/ and read from there.  Refresh it with
# ``curl -o docs/_intersphinx/python3.inv https://docs.python.org/3/objects.inv``.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", "_intersphinx/python3.inv"),
}
intersphinx_timeout = 5

html_theme = "furo"
html_title = f"zerocopy {release}"

# The asyncio names load lazily (zerocopy.__getattr__) and so are missing from dir(zerocopy),
# which autodoc walks: resolve every public name once so the reference lists all of __all__.
for _name in _zerocopy.__all__:
    getattr(_zerocopy, _name)


# zerocopy/__init__.py sets each public class's __module__ to "zerocopy" (so reprs and
# tracebacks say zerocopy.X), which sends autodoc's source analyser to __init__.py, where
# the ``#:`` comments documenting the fields (TransferResult.transferred, ...) are not.
# Read them from the module that defines each class instead.
def _field_docs() -> dict[tuple[str, str], list[str]]:
    docs: dict[tuple[str, str], list[str]] = {}
    public = {id(getattr(_zerocopy, name)): name for name in _zerocopy.__all__}
    for modname, module in list(_sys.modules.items()):
        if not modname.startswith("zerocopy._") or module is None:
            continue
        names = {name for name, obj in vars(module).items()
                 if isinstance(obj, type) and public.get(id(obj)) == name}
        if not names:
            continue
        try:
            found = _ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # a compiled module has no source to analyse
            continue
        docs.update({key: list(lines) for key, lines in found.items() if key[0] in names})
    return docs


_ANALYZER = _ModuleAnalyzer.for_module("zerocopy")
_ANALYZER.analyze()
_ANALYZER.attr_docs.update(_field_docs())


def _napoleon_except_fields(app: Sphinx, what: str, name: str, obj: object,
                            options: object, lines: list[str]) -> None:
    # Napoleon reads a field's "``sendfile(2)``: from the page cache" as "type: text";
    # the fields' ``#:`` comments are plain reST, so they skip it.
    if what != "attribute":
        _napoleon_process(app, what, name, obj, options, lines)


def setup(app: Sphinx) -> None:
    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is _napoleon_process:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_except_fields)
