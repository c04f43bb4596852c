"""Byte ranges (RFC 9110 section 14): parsing ``Range``, the caps against abuse,
and the exact layout of a ``multipart/byteranges`` body.

Rules, and where they come from:

- A ``Range`` that does not parse is ignored (RFC 9110 14.2: the server MAY ignore
  it), and so is one asking for more ranges than ``max_ranges`` (nginx's
  ``max_ranges``) or whose ranges add up to more than the file (Go's
  ``sumRangesSize > size`` rule in net/http/fs.go): a full 200 is always correct.
- Overlapping and adjacent ranges are coalesced (RFC 9110 14.2 allows it), so no
  byte is sent twice and a thousand overlapping ``0-`` ranges cost one.
- None satisfiable: 416 with ``Content-Range: bytes */N`` (RFC 9110 15.5.17).  An
  empty file is never a 416: it gets its 200 (as Go does).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Multipart", "Span", "UNSATISFIABLE", "multipart", "parse_range"]


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes ``start`` to ``end`` inclusive, as ``Content-Range`` counts them."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


#: parse_range's answer when the header is valid but no range is satisfiable.
UNSATISFIABLE: list[Span] = []


def _one(spec: str, size: int) -> Span | None | bool:
    """One ``first-last`` / ``first-`` / ``-suffix``: a Span, None when valid but
    unsatisfiable, False when it does not parse."""
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or (not first and last.isdigit())):
        return False
    if last and not last.isdigit():
        return False
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return None
        return Span(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return False  # RFC 9110 14.1.1: invalid
    if start >= size:
        return None
    return Span(start, min(end, size - 1))


def parse_range(header: str, size: int, max_ranges: int) -> list[Span] | None:
    """The spans to send for *header* over a file of *size* bytes, coalesced and
    in order; ``UNSATISFIABLE`` (empty) for a 416; None to ignore the header."""
    unit, eq, specs = header.partition("=")
    if not eq or unit.strip().lower() != "bytes" or size == 0:
        return None
    items = specs.split(",")
    if len(items) > max_ranges:
        return None
    spans: list[Span] = []
    for item in items:
        span = _one(item, size)
        if span is False:
            return None
        if isinstance(span, Span):
            spans.append(span)
    if not spans:
        return UNSATISFIABLE
    if sum(span.length for span in spans) > size:
        return None
    return _coalesce(spans)


def _coalesce(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: s.start):
        if merged and span.start <= merged[-1].end + 1:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return merged


@dataclass(frozen=True, slots=True)
class Multipart:
    """A ``multipart/byteranges`` body: the part heads, each followed by its span of
    the file, then the closing delimiter.  ``length`` is exact before a byte goes."""

    content_type: str
    heads: list[bytes]
    spans: list[Span]
    tail: bytes

    @property
    def length(self) -> int:
        return (sum(len(h) for h in self.heads) + sum(s.length for s in self.spans)
                + len(self.tail))


def multipart(spans: list[Span], size: int, content_type: str, boundary: str) -> Multipart:
    """Lay out the body for *spans* (RFC 9110 14.6): each part is CRLF, the
    delimiter, its own Content-Type and Content-Range, a blank line and the bytes."""
    heads = [(f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
              f"Content-Range: bytes {s.start}-{s.end}/{size}\r\n\r\n").encode("latin-1")
             for s in spans]
    return Multipart(f"multipart/byteranges; boundary={boundary}", heads, spans,
                     f"\r\n--{boundary}--\r\n".encode("latin-1"))
