"""Backend swapping for tests: ``use_backend`` and the pytest plugin's fixtures, the
latter exercised by a small user project run under pytest in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import zerocopy
from zerocopy import BackendName, Method, use_backend
from zerocopy._backends import resolve

# --- use_backend -----------------------------------------------------------------------


def _copy(make_file: Callable[..., Path]) -> zerocopy.TransferResult:
    with open(make_file(b"abc" * 1000), "rb") as src, open(make_file(), "wb") as dst:
        return zerocopy.transfer(src, dst)


def test_use_backend_as_context_manager(backend: BackendName, make_file: Callable[..., Path]) -> None:
    default = resolve(None).NAME
    with use_backend(backend) as name:
        assert name == backend
        assert _copy(make_file).backend == backend
    assert resolve(None).NAME == default
    assert _copy(make_file).backend == default


def test_use_backend_as_decorator(make_file: Callable[..., Path]) -> None:
    @use_backend("portable")
    def job() -> zerocopy.TransferResult:
        return _copy(make_file)

    result = job()
    assert (result.backend, result.method) == ("portable", Method.READ_WRITE)
    assert job().backend == "portable"  # reusable: each call enters afresh


def test_use_backend_nests_and_per_call_wins(make_file: Callable[..., Path]) -> None:
    with use_backend("portable"):
        with use_backend("os"):
            assert resolve(None).NAME == "os"
        assert resolve(None).NAME == "portable"
        with open(make_file(b"x"), "rb") as src, open(make_file(), "wb") as dst:
            assert zerocopy.transfer(src, dst, backend="os").backend == "os"


def test_use_backend_is_seen_by_other_threads() -> None:
    seen: list[str] = []
    with use_backend("portable"):
        t = threading.Thread(target=lambda: seen.append(resolve(None).NAME))
        t.start()
        t.join()
    assert seen == ["portable"]


def test_use_backend_refuses_unknown_names_at_once() -> None:
    with pytest.raises(ValueError, match="unknown zerocopy backend 'fast'"):
        use_backend("fast")  # type: ignore[arg-type]


def test_use_backend_restores_after_an_error() -> None:
    default = resolve(None).NAME
    with pytest.raises(RuntimeError), use_backend("portable"):
        raise RuntimeError
    assert resolve(None).NAME == default


def test_our_plugin_fixture_swaps_the_default(zerocopy_backend: BackendName,
                                              make_file: Callable[..., Path]) -> None:
    assert _copy(make_file).backend == zerocopy_backend


# --- the plugin, the way a user's project uses it ----------------------------------------

USER_TESTS = '''
    """A user's own tests of their own code, which calls zerocopy without backend=."""
    import errno
    import os
    import socket
    import threading

    import zerocopy

    BACKENDS_SEEN = []


    def send_file(path, sock):
        """The user's code under test: True when the whole file went out."""
        try:
            with open(path, "rb") as f:
                zerocopy.transfer(f, sock)
        except BrokenPipeError:
            return False
        return True


    def _peer(sock, got):
        while data := sock.recv(1 << 16):
            got.append(data)


    def _run(tmp_path, size=1 << 18):
        path = tmp_path / "payload"
        path.write_bytes(os.urandom(size))
        a, b = socket.socketpair()
        got = []
        reader = threading.Thread(target=_peer, args=(b, got))
        reader.start()
        with a:
            ok = send_file(path, a)
        reader.join()
        b.close()
        return ok, b"".join(got), path.read_bytes()


    def test_runs_once_per_backend(zerocopy_backend, tmp_path):
        BACKENDS_SEEN.append(zerocopy_backend)
        with open(tmp_path / "x", "wb") as f:
            f.write(b"x")
        with open(tmp_path / "x", "rb") as src, open(tmp_path / "y", "wb") as dst:
            assert zerocopy.transfer(src, dst).backend == zerocopy_backend
        ok, got, sent = _run(tmp_path)
        assert ok and got == sent


    def test_broken_pipe_is_handled(zerocopy_faults, tmp_path):
        # the second sendfile (native, os) or write (portable) fails: handled
        zerocopy_faults.fail("sendfile", errno.EPIPE, skip=1)
        zerocopy_faults.fail("write", errno.EPIPE, skip=1)
        ok, got, sent = _run(tmp_path, size=16 << 20)
        assert not ok and 0 < len(got) < len(sent) and sent.startswith(got)


    def test_faults_are_gone_after_each_test(zerocopy_faults, tmp_path):
        assert zerocopy_faults.pending("sendfile") == 0
        assert zerocopy_faults.pending("write") == 0
        ok, got, sent = _run(tmp_path)
        assert ok and got == sent


    def test_both_fixtures_together(zerocopy_backend, zerocopy_faults, tmp_path):
        zerocopy_faults.fail("sendfile", errno.EINVAL)
        path = tmp_path / "p"
        path.write_bytes(b"z" * 5000)
        a, b = socket.socketpair()
        with a, b, open(path, "rb") as f:
            result = zerocopy.transfer(f, a)
            assert b.recv(10000) == b"z" * 5000
        assert result.backend == zerocopy_backend
        if zerocopy_backend != "portable":
            assert result.fallbacks[0].method is zerocopy.Method.SENDFILE


    def test_backends_seen():
        assert BACKENDS_SEEN == list(zerocopy.available_backends())
'''


def test_plugin_in_a_user_project(tmp_path: Path) -> None:
    """pytest, run in a fresh process over a user's test file, finds the plugin through
    its pytest11 entry point (no conftest, no -p) and its fixtures do their job."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ZEROCOPY_", "PYTEST_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "test_user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # Two tests per backend that loads there (test_backends_seen checked which, in
    # that process), the others skipped with a reason, plus three plain tests.
    passed = int(re.search(r"(\d+) passed", out).group(1))  # type: ignore[union-attr]
    skipped_match = re.search(r"(\d+) skipped", out)
    skipped = int(skipped_match.group(1)) if skipped_match else 0
    loaded = (passed - 3) // 2
    assert 1 <= loaded <= 3 and passed == 2 * loaded + 3, out
    assert skipped == 2 * (3 - loaded), out
