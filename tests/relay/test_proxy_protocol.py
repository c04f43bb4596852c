"""PROXY protocol headers byte-exact against proxy-protocol.txt's examples."""

from __future__ import annotations

import pytest

from zerocopy._relay.proxy_protocol import (
    V2_SIGNATURE, ProxyHeader, ProxyProtocolError, encode_v1, encode_v2, header_length, parse)


def test_v1_examples_from_the_spec() -> None:
    # Section 2.1, the worst-case lines.
    assert encode_v1(("255.255.255.255", 65535), ("255.255.255.255", 65535)) == \
        b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
    six = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    line = encode_v1((six, 65535), (six, 65535))
    assert line == f"PROXY TCP6 {six} {six} 65535 65535\r\n".encode()
    assert len(line) == 104
    assert encode_v1(None, None) == b"PROXY UNKNOWN\r\n"
    assert encode_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == \
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"


def test_v2_bytes() -> None:
    assert V2_SIGNATURE == b"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
    header = encode_v2(("192.168.0.1", 56324), ("192.168.0.11", 443))
    assert header == (V2_SIGNATURE + b"\x21\x11\x00\x0c" + bytes([192, 168, 0, 1])
                      + bytes([192, 168, 0, 11]) + b"\xdc\x04\x01\xbb")
    six = encode_v2(("::1", 1), ("2001:db8::2", 2))
    assert six[12:16] == b"\x21\x21\x00\x24" and len(six) == 16 + 36
    assert encode_v2(None, None) == V2_SIGNATURE + b"\x20\x00\x00\x00"


@pytest.mark.parametrize("header", [
    encode_v1(("10.0.0.1", 1000), ("10.0.0.2", 80)),
    encode_v2(("10.0.0.1", 1000), ("10.0.0.2", 80)),
    encode_v2(("::1", 1000), ("::2", 80)),
])
def test_round_trip_and_length(header: bytes) -> None:
    assert header_length(header[:5]) is None
    assert header_length(header + b"payload") == len(header)
    got = parse(header)
    assert got.source is not None and got.source[1] == 1000
    assert got.destination is not None and got.destination[1] == 80


def test_garbage_is_refused() -> None:
    with pytest.raises(ProxyProtocolError):
        header_length(b"GET / HTTP/1.1\r\n")
    assert parse(b"PROXY UNKNOWN\r\n") == ProxyHeader(None, None)
