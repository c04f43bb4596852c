"""The PROXY protocol header, versions 1 (text) and 2 (binary), to send to a target
and to accept from a load balancer (haproxy's proxy-protocol.txt, sections 2.1 and
2.2)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

__all__ = ["V2_SIGNATURE", "ProxyHeader", "encode_v1", "encode_v2", "parse"]

#: Section 2.2: the 12-byte signature that opens every v2 header.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: Section 2.1: a v1 line is at most 107 bytes, CRLF included.
V1_MAX = 107


@dataclass(frozen=True)
class ProxyHeader:
    """The addresses a header carries; ``None`` for LOCAL / UNKNOWN."""

    source: tuple[str, int] | None
    destination: tuple[str, int] | None


def _family(host: str) -> int:
    return 4 if ipaddress.ip_address(host).version == 4 else 6


def encode_v1(source: tuple[str, int] | None, destination: tuple[str, int] | None) -> bytes:
    """``PROXY TCP4 src dst sport dport\\r\\n``; ``PROXY UNKNOWN\\r\\n`` without addresses."""
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n"
    proto = "TCP4" if _family(source[0]) == 4 else "TCP6"
    return (f"PROXY {proto} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
            .encode("ascii"))


def encode_v2(source: tuple[str, int] | None, destination: tuple[str, int] | None) -> bytes:
    """The binary header: version 2, command PROXY (0x21), TCP over IPv4 (0x11) or
    IPv6 (0x21); LOCAL (0x20, family 0) without addresses."""
    if source is None or destination is None:
        return V2_SIGNATURE + b"\x20\x00\x00\x00"
    if _family(source[0]) == 4:
        fam, packed = 0x11, socket.inet_pton(socket.AF_INET, source[0]) + \
            socket.inet_pton(socket.AF_INET, destination[0])
    else:
        fam, packed = 0x21, socket.inet_pton(socket.AF_INET6, source[0]) + \
            socket.inet_pton(socket.AF_INET6, destination[0])
    body = packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + bytes((0x21, fam)) + struct.pack("!H", len(body)) + body


class ProxyProtocolError(ValueError):
    """A header that does not parse."""


def header_length(data: bytes) -> int | None:
    """How long the header at the start of *data* is, or None if more is needed."""
    if data.startswith(V2_SIGNATURE[: len(data)]) and len(data) < 16:
        return None
    if data.startswith(V2_SIGNATURE):
        return 16 + int.from_bytes(data[14:16], "big")
    if data.startswith(b"PROXY "[: len(data)]) or data.startswith(b"PROXY "):
        end = data.find(b"\r\n")
        if end < 0:
            if len(data) >= V1_MAX:
                raise ProxyProtocolError("PROXY v1 line longer than 107 bytes")
            return None
        return end + 2
    raise ProxyProtocolError("no PROXY protocol header")


def parse(header: bytes) -> ProxyHeader:
    """A whole v1 or v2 header (see :func:`header_length`) → its addresses."""
    if header.startswith(V2_SIGNATURE):
        ver_cmd, fam = header[12], header[13]
        if ver_cmd >> 4 != 2:
            raise ProxyProtocolError("PROXY v2: bad version")
        body = header[16:]
        if ver_cmd & 0xF == 0 or fam >> 4 == 0:  # LOCAL, or AF_UNSPEC
            return ProxyHeader(None, None)
        if fam >> 4 == 1 and len(body) >= 12:
            af, n = socket.AF_INET, 4
        elif fam >> 4 == 2 and len(body) >= 36:
            af, n = socket.AF_INET6, 16
        else:
            return ProxyHeader(None, None)
        src, dst = socket.inet_ntop(af, body[:n]), socket.inet_ntop(af, body[n:2 * n])
        sport, dport = struct.unpack("!HH", body[2 * n:2 * n + 4])
        return ProxyHeader((src, sport), (dst, dport))
    parts = header.rstrip(b"\r\n").decode("ascii", "replace").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(None, None)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"bad PROXY v1 line {header!r}")
    return ProxyHeader((parts[2], int(parts[4])), (parts[3], int(parts[5])))
