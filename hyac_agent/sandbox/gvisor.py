"""The gVisor backend: the docker sandbox, with each container run by ``runsc``.

gVisor puts a user-space kernel (the Sentry) between the function and the host: the
function's system calls are served by the Sentry, which itself runs under a tight
seccomp filter and reaches files only through a separate process (the gofer). A kernel
bug reachable from a function therefore has to be a bug in gVisor first.

Everything else is the docker backend's, unchanged: the runtime image, the hardened
container (uid 1000, no capabilities, read-only root, Hyac's seccomp profile, which
``--oci-seccomp`` makes the Sentry enforce too), memory/pids/CPU limits through the
container's cgroups, warm pools, the per-tenant bridges and the channel socket. The
choice of Docker over driving ``runsc`` directly was made by measurement (README,
"Sandbox backends"): same cold-start class, and the docker backend's limits, networks,
OOM reporting and clean-up come for free.

Two Docker runtimes are registered (``scripts/setup-gvisor.sh``, i.e. ``python -m
hyac_agent.sandbox.gvisor setup``): ``runsc`` with gVisor's own ``--network=none`` for
sandboxes without egress (Docker's ``network_mode=none`` alone still gives runsc a
network stack), and ``runsc-egress`` for the sandboxes of a tenant with egress, which
join that tenant's bridge: there gVisor hands socket calls to the host kernel
(``--network=host``, inside the container's own network namespace: the tenant's bridge,
under its firewall rules), since Debian's runsc cannot attach its own network stack to
Docker's bridge. Both connect to the host's unix sockets only where a mount shows one
(``--host-uds=open``): the channel socket.

The platform (how the Sentry traps system calls) is picked by trying each on this host:
``kvm`` where /dev/kvm works, else ``systrap`` where this runsc has it, else ``ptrace``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from hyac_agent.sandbox import seccomp
from hyac_agent.sandbox.base import SandboxSettings
from hyac_agent.sandbox.docker import DockerBackend, DockerSandbox, _client, _probe_error
from hyac_agent.sandbox.limits import ResourceLimits

#: the Docker runtime of sandboxes without a network, and of those of tenants with egress
RUNTIME = "runsc"
EGRESS_RUNTIME = "runsc-egress"
#: tried in this order; the first that runs ``true`` is used
PLATFORMS = ("kvm", "systrap", "ptrace")
DAEMON_JSON = Path("/etc/docker/daemon.json")
PROBE_TIMEOUT = 15.0
INSTALL_HINT = "apt-get install runsc, then scripts/setup-gvisor.sh"


def runsc_path() -> str | None:
    return shutil.which("runsc") or (
        "/usr/bin/runsc" if os.access("/usr/bin/runsc", os.X_OK) else None
    )


def probe_platform(runsc: str, platform: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when ``runsc --platform=PLATFORM do true`` works here, else why not."""
    if platform == "kvm":
        try:
            os.close(os.open("/dev/kvm", os.O_RDWR))
        except OSError as exc:
            return f"/dev/kvm unusable ({exc.strerror})"
    try:
        proc = subprocess.Popen(
            [runsc, f"--platform={platform}", "--network=none", "do", "true"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/", start_new_session=True,
        )
    except OSError as exc:
        return str(exc)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # KVM without nested virtualisation: the VM is made but never runs. The sandbox
        # and its gofer are in the probe's process group: none is left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"did not run `true` within {timeout:.0f}s"
    if proc.returncode != 0:
        lines = output.decode(errors="replace").strip().splitlines()
        return lines[-1][:200] if lines else f"exit code {proc.returncode}"
    return None


def detect_platform(runsc: str, timeout: float = PROBE_TIMEOUT) -> tuple[str, dict[str, str]]:
    """The fastest platform that works here, and why each faster one was passed over."""
    passed: dict[str, str] = {}
    for platform in PLATFORMS:
        reason = probe_platform(runsc, platform, timeout)
        if reason is None:
            return platform, passed
        passed[platform] = reason
    raise RuntimeError(f"runsc runs on no platform here: {passed}")


def runtime_entries(runsc: str, platform: str) -> dict[str, dict[str, Any]]:
    """The two Docker runtimes (daemon.json ``runtimes``) of the gvisor backend."""
    common = [f"--platform={platform}", "--host-uds=open", "--oci-seccomp"]
    return {
        RUNTIME: {"path": runsc, "runtimeArgs": [*common, "--network=none"]},
        # gVisor's own netstack cannot join Docker's bridge from Debian's runsc ("cannot
        # run with network enabled in root network namespace"): sandboxes of a tenant with
        # egress pass their sockets to the host kernel, inside the container's network
        # namespace, which is the tenant's bridge with its firewall rules.
        EGRESS_RUNTIME: {"path": runsc, "runtimeArgs": [*common, "--network=host"]},
    }


def merged_daemon_config(current: dict[str, Any], runsc: str, platform: str) -> dict[str, Any]:
    """``current`` (daemon.json) with the gvisor runtimes set; everything else kept."""
    merged = dict(current)
    merged["runtimes"] = {**current.get("runtimes", {}), **runtime_entries(runsc, platform)}
    return merged


def register(daemon_json: Path, runsc: str, platform: str) -> bool:
    """Write the runtimes into ``daemon_json``; True when it changed."""
    current: dict[str, Any] = {}
    if daemon_json.exists():
        text = daemon_json.read_text()
        current = json.loads(text) if text.strip() else {}
        if not isinstance(current, dict):
            raise ValueError(f"{daemon_json} does not hold a JSON object")
    merged = merged_daemon_config(current, runsc, platform)
    if merged == current:
        return False
    daemon_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = daemon_json.with_suffix(".json.hyac-tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    os.replace(tmp, daemon_json)
    return True


def _reload_dockerd() -> None:
    """dockerd re-reads ``runtimes`` on SIGHUP: running containers are untouched."""
    pids = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
    for pid in pids:
        os.kill(int(pid), signal.SIGHUP)


def registered_runtimes() -> dict[str, Any]:
    """The daemon's runtimes (name → {path, runtimeArgs}); empty when it cannot say."""
    try:
        info = _client(timeout=10).info()
    except Exception:
        return {}
    runtimes = info.get("Runtimes") or {}
    return runtimes if isinstance(runtimes, dict) else {}


@lru_cache(maxsize=1)
def _registered() -> tuple[str | None, str]:
    """(why gvisor cannot run here or None, the platform its runtime is registered with)."""
    runsc = runsc_path()
    if runsc is None:
        return f"gVisor's runsc is not installed ({INSTALL_HINT})", ""
    docker_reason = _probe_error()
    if docker_reason is not None:
        return f"gvisor runs its sandboxes through Docker: {docker_reason}", ""
    runtimes = registered_runtimes()
    missing = [name for name in (RUNTIME, EGRESS_RUNTIME) if name not in runtimes]
    if missing:
        return (
            f"Docker has no {' or '.join(missing)} runtime registered "
            "(scripts/setup-gvisor.sh registers them)"
        ), ""
    args = runtimes[RUNTIME].get("runtimeArgs") or []
    if "--network=none" not in args:
        return (
            f"Docker's {RUNTIME} runtime lacks --network=none "
            "(scripts/setup-gvisor.sh registers it anew)"
        ), ""
    platform = next(
        (a.split("=", 1)[1] for a in args if a.startswith("--platform=")), "ptrace"
    )
    return None, platform


@lru_cache(maxsize=1)
def _security_opts() -> list[str]:
    """no-new-privileges and Hyac's seccomp profile as gVisor's Sentry can enforce it.

    Debian's runsc ignores a rule's ``errnoRet`` and answers EPERM: the rule that makes
    ``clone3`` fail with ENOSYS (so glibc falls back to ``clone``, whose namespace flags
    the filter can see) would then make every thread start fail. gVisor implements no
    ``clone3`` at all (ENOSYS, tested), so that rule is left out here; every other rule
    answers EPERM anyway.
    """
    options = ["no-new-privileges:true"]
    if seccomp.supported_machine() is not None:
        profile = json.loads(seccomp.docker_profile())
        profile["syscalls"] = [
            rule for rule in profile["syscalls"] if rule.get("names") != ["clone3"]
        ]
        options.append("seccomp=" + json.dumps(profile, separators=(",", ":")))
    return options


#: how a process killed by SIGKILL exits
_SIGKILLED = 128 + signal.SIGKILL


class GvisorSandbox(DockerSandbox):
    def set_limits(self, limits: ResourceLimits) -> bool:
        """runsc cannot change a running sandbox's cgroups (``docker update`` fails): a
        pre-started sandbox serves only functions with the limits it was started with."""
        return limits == self.limits

    def exit_cause(self) -> str | None:
        """Under gVisor the memory limit's OOM kill ends the whole sandbox (the Sentry holds
        the function's memory) and Docker does not flag it: a worker that ends by SIGKILL,
        which the agent did not send, is reported as out of memory. A function that
        SIGKILLs itself is reported so too: it ran out of nothing but gains nothing."""
        cause = super().exit_cause()
        if cause is None and self.process.returncode == _SIGKILLED:
            return "out_of_memory"
        return cause


class GvisorBackend(DockerBackend):
    name = "gvisor"
    sandbox_class = GvisorSandbox

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        super().__init__(settings)
        self.platform = _registered()[1]

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _registered()[0]

    @property
    def label(self) -> str:
        return f"gvisor ({self.platform})"

    def security_opts(self) -> list[str]:
        return _security_opts()

    def oci_runtime_for(self, network: str) -> str:
        return RUNTIME if network == "none" else EGRESS_RUNTIME

    def describe(self) -> dict[str, object]:
        info = super().describe()
        info.update(
            backend=self.name,
            oci_runtime=f"runsc ({RUNTIME}, {EGRESS_RUNTIME} for tenants with egress)",
            platform=self.platform,
            seccomp=f"{info.get('seccomp')}, enforced by the Sentry (--oci-seccomp; clone3 "
            "is ENOSYS in gVisor itself); the Sentry runs under gVisor's own filter",
            limits=f"{info.get('limits')}; set at start (runsc cannot change them later)",
            kernel="gVisor's user-space kernel (the Sentry); the function reaches the host "
            "kernel only through it (and, for tenants with egress, the host's network stack)",
            network="gVisor --network=none by default; a bridge per tenant with egress "
            "(sockets served by the host kernel in that namespace), host unreachable",
        )
        return info


def _setup(daemon_json: Path, platform: str | None) -> int:
    runsc = runsc_path()
    if runsc is None:
        print(f"setup-gvisor: runsc is not installed ({INSTALL_HINT})", file=sys.stderr)
        return 1
    if platform:
        reason = probe_platform(runsc, platform)
        if reason:
            print(f"setup-gvisor: platform {platform} does not work here: {reason}",
                  file=sys.stderr)
            return 1
        passed: dict[str, str] = {}
    else:
        registered = registered_runtimes()
        args = registered.get(RUNTIME, {}).get("runtimeArgs") or []
        current = next((a.split("=", 1)[1] for a in args if a.startswith("--platform=")), "")
        wanted = runtime_entries(runsc, current)
        if current and all(
            registered.get(name, {}).get("runtimeArgs") == entry["runtimeArgs"]
            for name, entry in wanted.items()
        ) and probe_platform(runsc, current) is None:
            print(f"setup-gvisor: Docker runs runsc with platform {current} (already set up; "
                  "--platform to change it)")
            return 0
        platform, passed = detect_platform(runsc)
    for other, reason in passed.items():
        print(f"setup-gvisor: platform {other} not used: {reason}")
    changed = register(daemon_json, runsc, platform)
    if changed:
        _reload_dockerd()
    for _ in range(40):  # the reload is asynchronous
        runtimes = registered_runtimes()
        if all(runtimes.get(name, {}).get("runtimeArgs") == entry["runtimeArgs"]
               for name, entry in runtime_entries(runsc, platform).items()):
            print(f"setup-gvisor: Docker runs runsc with platform {platform}")
            return 0
        time.sleep(0.25)
    print(f"setup-gvisor: wrote {daemon_json}, but dockerd has not taken it up; restart "
          "dockerd", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hyac_agent.sandbox.gvisor",
        description="Register gVisor's runsc with Docker for the gvisor sandbox backend.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    setup = sub.add_parser("setup", help="pick the platform and register the runtimes")
    setup.add_argument("--daemon-json", type=Path, default=DAEMON_JSON,
                       help="Docker's daemon.json (default: /etc/docker/daemon.json)")
    setup.add_argument("--platform", choices=PLATFORMS,
                       help="use this platform instead of the fastest that works")
    sub.add_parser("platform", help="print the platform that works here")
    args = parser.parse_args(argv)
    if args.command == "platform":
        runsc = runsc_path()
        if runsc is None:
            print(f"runsc is not installed ({INSTALL_HINT})", file=sys.stderr)
            return 1
        print(detect_platform(runsc)[0])
        return 0
    return _setup(args.daemon_json, args.platform)


if __name__ == "__main__":
    sys.exit(main())
