"""HTTP semantics of zerocopy.http (RFC 9110/9112) with curl and raw sockets, on
every event loop; each test states one rule and fails if the server breaks it."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import select
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zerocopy.http import FileServer, ServeConfig

from ..support import pattern
from .rig import CURL, curl, exchange, loop_factories, running, split_response

pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed (apt install curl)")

BIG = pattern(300_000, seed=3)
SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/ with files, a directory, dotfiles, sidecars and symlinks; a secret beside
    root/ that no response may ever contain."""
    base = tmp_path_factory.mktemp("serve")
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "withindex").mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    (root / "withindex" / "index.html").write_bytes(b"<p>index</p>\n")
    (root / ".env").write_bytes(SECRET)
    (root / "<b>&.txt").write_bytes(b"x")
    (root / "page.html").write_bytes(b"<html>plain</html>\n")
    (root / "page.html.gz").write_bytes(gzip.compress(b"<html>plain</html>\n"))
    (root / "page.html.br").write_bytes(b"BROTLI-BYTES")
    (root / "nix.txt").write_bytes(b"nix\n")
    os.utime(root / "nix.txt", (1, 1))
    os.symlink("../secret.txt", root / "out-link")
    os.symlink(str(base / "secret.txt"), root / "abs-link")
    os.symlink("sub/inner.txt", root / "in-link")
    os.symlink("../root/hello.txt", root / "roundtrip-link")
    return root


@pytest.fixture(scope="module", params=sorted(loop_factories()))
def server(request: pytest.FixtureRequest, tree: Path) -> Iterator[FileServer]:
    factory: Callable[[], asyncio.AbstractEventLoop] = loop_factories()[request.param]
    with running(tree, factory=factory) as srv:
        yield srv


def get(server: FileServer, path: str, *headers: str, method: str = "GET"
        ) -> tuple[int, dict[str, str], bytes]:
    args = [f"-H{h}" for h in headers]
    if method == "HEAD":
        args.append("-I")
    elif method != "GET":
        args += ["-X", method]
    out = curl("-i", "--path-as-is", *args, server.url.rstrip("/") + path)
    assert out.returncode == 0, out.stderr
    return split_response(out.stdout)


def test_get_sends_the_file_with_length_and_type(server: FileServer) -> None:
    status, headers, body = get(server, "/hello.txt")
    assert (status, body) == (200, b"hello, world\n")
    assert headers["content-length"] == "13"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["accept-ranges"] == "bytes"


def test_large_file_arrives_whole(server: FileServer) -> None:
    out = curl(server.url + "big.bin")
    assert out.stdout == BIG


def test_empty_file_is_200_with_length_0(server: FileServer) -> None:  # aiohttp #5124
    status, headers, body = get(server, "/empty.txt")
    assert (status, headers["content-length"], body) == (200, "0", b"")


def test_head_has_the_get_headers_and_no_body(server: FileServer) -> None:
    _, got, _ = get(server, "/big.bin")
    raw = exchange(server.port, b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, head, rest = split_response(raw)
    assert status == 200 and rest == b""
    assert {k: v for k, v in head.items() if k not in ("date", "connection")} == \
        {k: v for k, v in got.items() if k not in ("date", "connection")}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_are_405_with_allow(server: FileServer, method: str) -> None:
    status, headers, _ = get(server, "/hello.txt", method=method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_pipelined_requests_are_answered_in_order(server: FileServer) -> None:
    request = (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /sub/inner.txt HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /empty.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = exchange(server.port, request)
    assert raw.count(b"HTTP/1.1 200 OK") == 3
    assert raw.index(b"hello, world") < raw.index(b"inner\n")
    assert raw.rstrip().endswith(b"Content-Length: 0")


def test_keep_alive_serves_many_requests_on_one_connection(server: FileServer) -> None:
    out = curl("-v", server.url + "hello.txt", server.url + "big.bin", "-o", "/dev/null",
               "-o", "/dev/null")
    assert b"Re-using existing connection" in out.stderr


def test_http10_closes_unless_keep_alive(server: FileServer) -> None:
    raw = exchange(server.port, b"GET /hello.txt HTTP/1.0\r\n\r\n")  # ends: the server closed
    assert raw.endswith(b"hello, world\n")
    raw = exchange(server.port, b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                   until_close=False)
    assert b"Connection: keep-alive" in raw


def test_single_range_is_206(server: FileServer) -> None:
    status, headers, body = get(server, "/big.bin", "Range: bytes=100-199")
    assert status == 206 and body == BIG[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(BIG)}"
    status, _, body = get(server, "/big.bin", "Range: bytes=-10")
    assert status == 206 and body == BIG[-10:]


def test_multiple_ranges_are_multipart_with_exact_length(server: FileServer) -> None:
    status, headers, body = get(server, "/big.bin", "Range: bytes=0-9,1000-1009")
    assert status == 206
    assert int(headers["content-length"]) == len(body)
    boundary = re.search(r"boundary=(\w+)", headers["content-type"])
    assert boundary is not None
    parts = body.split(b"--" + boundary.group(1).encode())
    assert BIG[:10] in parts[1] and BIG[1000:1010] in parts[2]
    assert b"Content-Range: bytes 1000-1009/" in parts[2]
    assert parts[-1] == b"--\r\n"


def test_overlapping_ranges_are_coalesced(server: FileServer) -> None:
    status, headers, body = get(server, "/big.bin", "Range: bytes=0-99,50-149")
    assert status == 206 and headers["content-range"].startswith("bytes 0-149/")
    assert body == BIG[:150]


def test_ranges_past_the_caps_are_ignored(server: FileServer) -> None:
    many = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(20))  # > max_ranges (16)
    assert get(server, "/big.bin", f"Range: bytes={many}")[0] == 200
    # Go's rule: ranges whose sum exceeds the size are ignored (a full 200)
    status, _, body = get(server, "/hello.txt", "Range: bytes=0-,0-,0-")
    assert status == 200 and body == b"hello, world\n"


def test_unsatisfiable_range_is_416_with_the_size(server: FileServer) -> None:
    status, headers, _ = get(server, "/hello.txt", "Range: bytes=100-200")
    assert status == 416 and headers["content-range"] == "bytes */13"


def test_if_range(server: FileServer) -> None:
    _, headers, _ = get(server, "/big.bin")
    etag, date = headers["etag"], headers["last-modified"]
    assert get(server, "/big.bin", "Range: bytes=0-0", f"If-Range: {etag}")[0] == 206
    assert get(server, "/big.bin", "Range: bytes=0-0", 'If-Range: "other"')[0] == 200
    assert get(server, "/big.bin", "Range: bytes=0-0", f"If-Range: {date}")[0] == 206
    assert get(server, "/big.bin", "Range: bytes=0-0",
               "If-Range: Mon, 01 Jan 2001 00:00:00 GMT")[0] == 200


def test_validators_and_304(server: FileServer) -> None:
    _, headers, _ = get(server, "/hello.txt")
    etag = headers["etag"]
    st = os.stat(Path(server.root) / "hello.txt")
    assert etag == f'"{st.st_dev:x}-{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'
    status, h304, body = get(server, "/hello.txt", f"If-None-Match: {etag}")
    assert (status, body) == (304, b"") and h304["etag"] == etag and "last-modified" in h304
    assert get(server, "/hello.txt", f"If-Modified-Since: {headers['last-modified']}")[0] == 304


def test_if_none_match_wins_over_if_modified_since(server: FileServer) -> None:
    _, headers, _ = get(server, "/hello.txt")  # RFC 9110 13.2.2
    status, _, _ = get(server, "/hello.txt", 'If-None-Match: "other"',
                       f"If-Modified-Since: {headers['last-modified']}")
    assert status == 200


def test_if_match_and_if_unmodified_since_give_412(server: FileServer) -> None:
    _, headers, _ = get(server, "/hello.txt")
    assert get(server, "/hello.txt", 'If-Match: "other"')[0] == 412
    assert get(server, "/hello.txt", f"If-Match: {headers['etag']}")[0] == 200
    assert get(server, "/hello.txt", "If-Unmodified-Since: Mon, 01 Jan 2001 00:00:00 GMT"
               )[0] == 412


def test_no_etag_when_mtime_is_meaningless(server: FileServer) -> None:  # Caddy #5548
    status, headers, _ = get(server, "/nix.txt")
    assert status == 200 and "etag" not in headers and "last-modified" not in headers


def test_precompressed_sidecars_by_accept_encoding(server: FileServer) -> None:
    status, headers, body = get(server, "/page.html", "Accept-Encoding: gzip")
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == b"<html>plain</html>\n"
    assert headers["vary"] == "Accept-Encoding"
    assert headers["content-type"] == "text/html; charset=utf-8"
    _, headers, body = get(server, "/page.html", "Accept-Encoding: gzip, br")
    assert headers["content-encoding"] == "br" and body == b"BROTLI-BYTES"
    _, headers, body = get(server, "/page.html", "Accept-Encoding: br;q=0, identity")
    assert "content-encoding" not in headers and body == b"<html>plain</html>\n"


def test_directory_index_listing_and_slash_redirect(server: FileServer) -> None:
    status, headers, _ = get(server, "/sub")
    assert status == 301 and headers["location"] == "/sub/"
    status, _, body = get(server, "/withindex/")
    assert (status, body) == (200, b"<p>index</p>\n")
    status, _, body = get(server, "/")
    assert status == 200 and b'href="sub/"' in body
    assert b"&lt;b&gt;&amp;.txt" in body and b"<b>" not in body
    assert b".env" not in body


def test_redirect_is_never_protocol_relative(server: FileServer) -> None:
    status, headers, _ = get(server, "//sub")
    assert status == 301 and headers["location"] == "/sub/"


def test_dotfiles_are_hidden(server: FileServer) -> None:
    assert get(server, "/.env")[0] == 404


TRAVERSALS = ["/../secret.txt", "/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt",
              "/..%5csecret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "//../secret.txt",
              "/hello.txt%00.html", "/out-link", "/abs-link", "/sub/../../secret.txt",
              "/..\\secret.txt", "/%252e%252e/secret.txt"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_root(server: FileServer, path: str) -> None:
    raw = exchange(server.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   .encode())
    assert SECRET not in raw
    assert split_response(raw)[0] in (400, 404)


def test_symlinks_inside_are_followed(server: FileServer) -> None:
    assert get(server, "/in-link")[2] == b"inner\n"
    # a link that climbs above the root and comes back is refused: every step of the
    # resolution must stay beneath the root (RESOLVE_BENEATH's rule, kept by the walk)
    assert get(server, "/roundtrip-link")[0] == 404


def test_symlinks_never_policy(tree: Path) -> None:
    with running(tree, ServeConfig(symlinks="never")) as srv:
        assert get(srv, "/in-link")[0] == 404
        assert get(srv, "/hello.txt")[0] == 200


def test_listing_can_be_turned_off(tree: Path) -> None:
    with running(tree, ServeConfig(listing=False, cache_control="max-age=60")) as srv:
        assert get(srv, "/sub/")[0] == 404
        assert get(srv, "/hello.txt")[1]["cache-control"] == "max-age=60"


def test_oversized_headers_are_431(server: FileServer) -> None:
    raw = exchange(server.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Big: "
                   + b"a" * 20000 + b"\r\n\r\n")
    assert split_response(raw)[0] == 431


def test_a_long_request_target_is_414(server: FileServer) -> None:
    raw = exchange(server.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert split_response(raw)[0] == 414


def test_a_long_target_in_pieces_is_414(server: FileServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /")
        for _ in range(10):  # 10 x 1 KiB of target, never its end
            try:
                sock.sendall(b"b" * 1024)
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0.05)[0]:
                break  # answered: stop before the close meets unread bytes
        assert split_response(sock.recv(65536))[0] == 414


def test_a_target_under_the_limit_is_served(server: FileServer) -> None:
    raw = exchange(server.port, b"GET /hello.txt?" + b"q" * 7000
                   + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert split_response(raw)[0] == 200


def test_garbage_is_400(server: FileServer) -> None:
    raw = exchange(server.port, b"\x00\x01 nonsense\r\n\r\n")
    assert split_response(raw)[0] == 400


def test_slow_headers_time_out_with_408(tree: Path) -> None:  # slowloris
    with running(tree, ServeConfig(header_timeout=0.5)) as srv:
        raw = exchange(srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
        assert split_response(raw)[0] == 408
