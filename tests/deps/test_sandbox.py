"""The installers' sandbox, run for real: a build step has no network, no root, and the
functions' seccomp filter; a fetch step keeps the network; no bubblewrap, no build."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from hyac_agent.deps import InstallFailed, sandbox
from hyac_agent.sandbox.limits import cgroup_manager
from tests.deps.loopback import listening, pending_connections

PROBE = r"""
import ctypes, json, os, socket, sys
seen = {"uid": os.getuid(), "euid": os.geteuid()}
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    seen["connect"] = "connected"
except OSError as exc:
    seen["connect"] = repr(exc)
libc = ctypes.CDLL(None, use_errno=True)
seen["unshare"] = [libc.syscall({"x86_64": 272, "aarch64": 97}[os.uname().machine], 0),
                   ctypes.get_errno()]
seen["env"] = sorted(os.environ)
print(json.dumps(seen))
"""

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (apt-get install bubblewrap)")


def probe(tmp_path: Path, port: int, network: bool) -> dict:
    result = sandbox.run_sandboxed(
        [sys.executable, "-c", PROBE, str(port)], writable=tmp_path,
        readable=[Path(sys.prefix), Path(sys.base_prefix)], network=network, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@needs_bwrap
def test_a_build_step_has_no_network_no_root_and_the_seccomp_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYAC_TOKEN_LIKE_SECRET", "s3cret")
    with listening() as listener:
        port = listener.getsockname()[1]
        fetch = probe(tmp_path, port, network=True)
        assert fetch["connect"] == "connected"  # the probe does reach the host's loopback...
        assert pending_connections(listener) == 1
        build = probe(tmp_path, port, network=False)
        assert build["connect"] != "connected"  # ...but not from a build step
        assert pending_connections(listener) == 0
    for seen in (fetch, build):
        assert seen["uid"] != 0 and seen["euid"] != 0
        assert seen["unshare"] == [-1, 1]  # EPERM from the filter (unshare(0) succeeds otherwise)
        assert not any(key.startswith("HYAC_") for key in seen["env"])


def test_without_bubblewrap_a_build_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "sandbox_available", lambda: False)
    marker = tmp_path / "ran"
    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ran')"]
    with pytest.raises(InstallFailed, match="bubblewrap"):
        sandbox.run_sandboxed(argv, writable=tmp_path, readable=[], network=False)
    assert not marker.exists()
    # a fetch runs no package code: it goes on, unsandboxed (the same command proves it runs)
    assert sandbox.run_sandboxed(argv, writable=tmp_path, readable=[], network=True).returncode == 0
    assert marker.read_text() == "ran"


THREADS = r"""
import threading
stop, started = threading.Event(), 0
try:
    for _ in range(LIMIT + 100):
        threading.Thread(target=stop.wait).start()
        started += 1
except RuntimeError:
    pass
stop.set()
print(started)
"""


@needs_bwrap
def test_a_build_step_stops_at_the_pids_limit(tmp_path: Path) -> None:
    if cgroup_manager()[0] is None:
        pytest.skip(f"no cgroups for the installers here: {cgroup_manager()[1]}")
    limit = sandbox.STEP_LIMITS.pids
    result = sandbox.run_sandboxed(
        [sys.executable, "-c", THREADS.replace("LIMIT", str(limit))], writable=tmp_path,
        readable=[Path(sys.prefix), Path(sys.base_prefix)], network=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    started = int(result.stdout)
    assert 50 < started < limit  # threads started (the probe ran), then the limit held


@needs_bwrap
def test_a_step_past_its_time_is_stopped_with_one_line(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(600)"]
    with pytest.raises(InstallFailed, match="took longer than 3 s"):
        sandbox.run_sandboxed(argv, writable=tmp_path, network=False, timeout=3,
                              readable=[Path(sys.prefix), Path(sys.base_prefix)])
