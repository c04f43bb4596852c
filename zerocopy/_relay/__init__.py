"""The two-way pump: ``relay(a, b)`` and ``await arelay(a, b)`` between two stream
sockets, with splice through pooled pipes and read/write when splice is refused."""

from __future__ import annotations

from .common import RelayError as RelayError
from .common import RelayResult as RelayResult
from .pump import relay as relay

__all__ = ["RelayError", "RelayResult", "relay"]
