"""zerocopy.http: a static file server on asyncio that sends bodies with sendfile.

:class:`FileServer` serves a directory (GET and HEAD, ranges, validators,
precompressed sidecars, listings) with every path resolved beneath the root;
:class:`ServeConfig` holds its policies.  Needs the ``serve`` extra
(``pip install 'zerocopy[serve]'``, which brings httptools); see docs/serve.md.
"""

from __future__ import annotations

from ._server import FileServer as FileServer
from ._server import ServeConfig as ServeConfig

__all__ = ["FileServer", "ServeConfig"]
