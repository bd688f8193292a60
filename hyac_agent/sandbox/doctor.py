"""`hyac-agent doctor`: which backends work here, what isolation is in force, what to
install for the rest."""

from __future__ import annotations

import shutil
from typing import Any

from hyac_agent.config import AgentConfig


def _hints(name: str, reason: str | None) -> list[str]:
    if name == "docker":
        hints = []
        if reason and "not reachable" in reason:
            hints.append("scripts/setup-docker.sh (installs docker.io, starts dockerd, builds the image)")
        if reason and "no runtime image" in reason:
            hints.append("hyac-agent images build")
        if not shutil.which("runsc"):
            hints.append("optional: gVisor for a user-space kernel: apt-get install runsc, "
                         "scripts/setup-gvisor.sh, then --sandbox gvisor")
        return hints
    if name == "gvisor":
        hints = []
        if reason and "not installed" in reason:
            hints.append("apt-get install runsc")
        if reason and ("runtime" in reason or "not installed" in reason):
            hints.append("scripts/setup-gvisor.sh (picks the platform, registers runsc with Docker)")
        if reason and "not reachable" in reason:
            hints.append("scripts/setup-docker.sh (gvisor runs its sandboxes through Docker)")
        if reason and "no runtime image" in reason:
            hints.append("hyac-agent images build")
        return hints
    if name == "bwrap":
        hints = []
        if reason:
            hints.append("apt-get install bubblewrap")
        from hyac_agent.tenancy.network import missing_tools

        network = missing_tools()
        if network:
            hints.append(f"tenant egress needs per-tenant network namespaces: {network}")
        return hints
    return []


def report(config: AgentConfig | None = None) -> dict[str, Any]:
    from hyac_agent import runtimes
    from hyac_agent.sandbox import BACKENDS, auto_choice
    from hyac_common import __version__

    config = config or AgentConfig()
    settings = config.sandbox_settings()
    backends: dict[str, Any] = {}
    for name, cls in BACKENDS.items():
        if name == "none":
            continue
        reason = cls.unavailable_reason()
        if name in ("docker", "gvisor") and reason is None:
            reason = cls.default_image_missing(settings)  # type: ignore[attr-defined]
        info: dict[str, Any] = {"available": reason is None, "reason": reason}
        if reason is None or name == "bwrap" and cls.unavailable_reason() is None:
            try:
                backend = cls(settings)
                info["isolation"] = backend.describe()
                info["label"] = backend.label
            except Exception as exc:  # the report must not die on one backend
                info["isolation"] = {"error": str(exc)}
        info["install"] = _hints(name, reason)
        if name == "docker" and reason is None:
            from hyac_agent.sandbox.docker import daemon_version, deadlock_warning

            warning = deadlock_warning(daemon_version())
            if warning:
                info["install"].append(warning)
        backends[name] = info
    if config.sandbox == "auto":
        chosen, why = auto_choice(settings)
    else:
        chosen, why = config.sandbox, "chosen by HYAC_SANDBOX / --sandbox"
    return {
        "version": __version__,
        "sandbox": {"selected": chosen, "why": why},
        "backends": backends,
        "runtimes": runtimes.available(),
    }


def render(data: dict[str, Any]) -> list[str]:
    lines = [f"hyac-agent {data['version']}"]
    selected = data["sandbox"]
    lines.append(f"sandbox in use: {selected['selected']} ({selected['why']})")
    for name, info in data["backends"].items():
        state = "ok" if info["available"] else f"unavailable: {info['reason']}"
        if info["available"] and info.get("label", name) != name:
            state += f" ({info['label'].removeprefix(name).strip(' ()')} platform)"
        lines.append(f"  sandbox {name:6} {state}")
        for key, value in (info.get("isolation") or {}).items():
            if key != "backend":
                lines.append(f"      {key:22} {value}")
        for hint in info.get("install", []):
            lines.append(f"      to do: {hint}")
    for name, path in data["runtimes"].items():
        lines.append(f"  runtime {name:10} {path or 'not installed'}")
    return lines
