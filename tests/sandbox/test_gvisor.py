"""The gvisor backend's set-up: the platform trial against the real runsc, the Docker
runtimes it registers, the seccomp profile the Sentry gets, and what doctor says. The
escape suite (test_escapes.py, test_kernel_attacks.py) runs its attacks on gvisor too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyac_agent.sandbox import gvisor
from tests.conftest import current_runtime
from tests.sandbox.conftest import Target, backend_missing


def _runsc() -> str:
    """runsc, where the gvisor backend is usable; else skip, saying why (e.g. inside a
    container whose cgroups runsc cannot write, where no platform runs a sandbox)."""
    runsc = gvisor.runsc_path()
    if runsc is None:
        pytest.skip("SANDBOX BACKEND 'gvisor' NOT TESTED: runsc is not installed "
                    "(apt-get install runsc; scripts/setup-gvisor.sh)")
    reason = backend_missing("gvisor")
    if reason:
        pytest.skip(f"SANDBOX BACKEND 'gvisor' NOT TESTED: {reason}")
    return runsc


def test_ptrace_runs_here_and_an_unknown_platform_is_refused_with_a_reason() -> None:
    runsc = _runsc()
    assert gvisor.probe_platform(runsc, "ptrace") is None
    reason = gvisor.probe_platform(runsc, "no-such-platform")
    assert reason and "\n" not in reason


def test_detected_platform_is_one_that_runs() -> None:
    runsc = _runsc()
    # A short trial: where /dev/kvm cannot run a guest, kvm is given up after it.
    platform, passed = gvisor.detect_platform(runsc, timeout=4)
    assert platform in gvisor.PLATFORMS and platform not in passed
    # every faster platform was tried and says why it was not taken
    assert list(passed) == list(gvisor.PLATFORMS[: gvisor.PLATFORMS.index(platform)])
    assert gvisor.probe_platform(runsc, platform) is None


def test_register_keeps_the_rest_of_daemon_json(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text(json.dumps({
        "log-driver": "json-file",
        "runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}},
    }))
    assert gvisor.register(daemon, "/usr/bin/runsc", "ptrace") is True
    written = json.loads(daemon.read_text())
    assert written["log-driver"] == "json-file"
    assert written["runtimes"]["kata"] == {"path": "/usr/bin/kata-runtime"}
    closed = written["runtimes"][gvisor.RUNTIME]["runtimeArgs"]
    egress = written["runtimes"][gvisor.EGRESS_RUNTIME]["runtimeArgs"]
    # Docker's --network=none alone still gives runsc a network stack: gVisor's own flag.
    assert "--network=none" in closed and "--network=none" not in egress
    assert "--network=host" in egress, "the tenant's bridge namespace, via the host kernel"
    for args in (closed, egress):
        assert "--platform=ptrace" in args and "--host-uds=open" in args
    assert gvisor.register(daemon, "/usr/bin/runsc", "ptrace") is False, "idempotent"
    assert gvisor.register(daemon, "/usr/bin/runsc", "kvm") is True


def test_register_refuses_a_daemon_json_that_is_not_an_object(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text("[]")
    with pytest.raises(ValueError):
        gvisor.register(daemon, "/usr/bin/runsc", "ptrace")
    assert daemon.read_text() == "[]"


def test_sentry_profile_is_hyacs_without_the_clone3_errno_rule() -> None:
    from hyac_agent.sandbox import seccomp

    if seccomp.supported_machine() is None:
        pytest.skip("Hyac has no seccomp profile for this CPU architecture")
    options = gvisor._security_opts()
    assert "no-new-privileges:true" in options
    profile = json.loads(next(o for o in options if o.startswith("seccomp="))[8:])
    full = json.loads(seccomp.docker_profile())
    assert [r for r in full["syscalls"] if r not in profile["syscalls"]] == [
        r for r in full["syscalls"] if r["names"] == ["clone3"]
    ]
    denied = profile["syscalls"][0]["names"]
    assert {"bpf", "io_uring_setup", "keyctl", "ptrace", "unshare"} <= set(denied)


def test_a_missing_runsc_is_reported_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from hyac_agent.sandbox.doctor import _hints

    monkeypatch.setattr(gvisor, "runsc_path", lambda: None)
    gvisor._registered.cache_clear()
    try:
        reason = gvisor.GvisorBackend.unavailable_reason()
    finally:
        gvisor._registered.cache_clear()
    assert reason and "apt-get install runsc" in reason
    assert "apt-get install runsc" in _hints("gvisor", reason)


def test_doctor_reports_gvisor_with_its_platform() -> None:
    from hyac_agent.sandbox.doctor import render, report

    _runsc()
    reason = gvisor.GvisorBackend.unavailable_reason()
    if reason:
        pytest.skip(f"SANDBOX BACKEND 'gvisor' NOT TESTED: {reason}")
    data = report()
    info = data["backends"]["gvisor"]
    platform = info["isolation"]["platform"]
    assert platform in gvisor.PLATFORMS
    assert info["label"] == f"gvisor ({platform})"
    assert any(line.strip().startswith("sandbox gvisor ok") and platform in line
               for line in render(data))


@pytest.mark.parametrize("session_target", ["gvisor"], indirect=True)
def test_runtime_list_names_gvisor_with_its_platform(session_target: Target) -> None:
    """What `hyac runtime ls` shows, from the escape suite's gvisor agent."""
    platform = gvisor.GvisorBackend().platform
    with session_target.agent.client() as client:
        rows = client.get("/v1/runtimes").json()
        agent = client.get("/v1/agent").json()
    row = next(r for r in rows if r["name"] == current_runtime())
    assert row["available"] and row["backends"][f"gvisor ({platform})"] == "ok"
    assert "gvisor" in json.dumps(agent)


def test_a_prestarted_sandbox_keeps_its_limits(tmp_path: Path) -> None:
    """runsc cannot change a running sandbox's cgroups: a generic sandbox takes only
    functions with its own limits (the pool starts another for the rest)."""
    import asyncio
    from dataclasses import replace

    from hyac_agent.sandbox import SandboxSettings, SandboxSpec

    reason = gvisor.GvisorBackend.unavailable_reason()
    if reason:
        pytest.skip(f"SANDBOX BACKEND 'gvisor' NOT TESTED: {reason}")

    async def run() -> tuple[bool, bool, int | None]:
        backend = gvisor.GvisorBackend(SandboxSettings(run_dir=tmp_path / "run"))
        limits = backend.settings.limits
        sandbox = await backend.start(SandboxSpec(runtime=backend.resolve_runtime(current_runtime()),
                                                  limits=limits))
        try:
            same = sandbox.set_limits(limits)
            other = sandbox.set_limits(replace(limits, memory_bytes=limits.memory_bytes * 2))
            return same, other, sandbox.process.returncode
        finally:
            await sandbox.kill()

    same, other, returncode = asyncio.run(run())
    assert same is True and other is False
    assert returncode is None, "the sandbox was running"
