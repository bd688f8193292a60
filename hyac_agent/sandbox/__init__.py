"""Sandbox backends and the choice between them."""

from __future__ import annotations

import logging
import shutil

from hyac_agent.sandbox.auto import AutoBackend
from hyac_agent.sandbox.base import Sandbox, SandboxBackend, SandboxSettings, SandboxSpec
from hyac_agent.sandbox.bubblewrap import BubblewrapBackend
from hyac_agent.sandbox.docker import DockerBackend
from hyac_agent.sandbox.gvisor import GvisorBackend
from hyac_agent.sandbox.limits import ResourceLimits
from hyac_agent.sandbox.unsandboxed import InsecureProcessBackend
from hyac_common.errors import SandboxUnavailable

log = logging.getLogger("hyac.sandbox")

BACKENDS: dict[str, type[SandboxBackend]] = {
    DockerBackend.name: DockerBackend,
    BubblewrapBackend.name: BubblewrapBackend,
    GvisorBackend.name: GvisorBackend,
    InsecureProcessBackend.name: InsecureProcessBackend,
}


def auto_choice(settings: SandboxSettings | None = None) -> tuple[str, str]:
    """(backend name, why): docker when its daemon answers and it has a runtime image for
    the agent's own Python, else bwrap."""
    reason = DockerBackend.unavailable_reason()
    if reason is None:
        image_reason = DockerBackend.default_image_missing(settings)
        if image_reason is None:
            return "docker", "the Docker daemon is reachable and has the runtime image"
        reason = image_reason
    return "bwrap", f"docker not used: {reason}"


def select_backend(
    choice: str, insecure_no_sandbox: bool, settings: SandboxSettings | None = None
) -> SandboxBackend:
    """The backend to use: ``choice`` is "auto" or a backend name.

    Never falls back to no isolation silently: that needs ``insecure_no_sandbox``.
    """
    if insecure_no_sandbox or choice == "none":
        if not insecure_no_sandbox:
            raise SandboxUnavailable(
                "sandbox 'none' runs functions unisolated; it needs --insecure-no-sandbox"
            )
        return _sweep(InsecureProcessBackend(settings))
    name = choice
    if choice == "auto":
        name, why = auto_choice(settings)
        log.info("sandbox auto: %s (%s)", name, why)
    if choice == "auto" and name == "docker" and BubblewrapBackend.unavailable_reason() is None:
        # Docker serves what it has images for; bubblewrap the rest (other Pythons, node, deno).
        primary = DockerBackend(settings)
        return _sweep(AutoBackend(primary, BubblewrapBackend(primary.settings), primary.settings))
    backend_cls = BACKENDS.get(name)
    if backend_cls is None or backend_cls is InsecureProcessBackend:
        raise SandboxUnavailable(
            f"unknown sandbox backend {choice!r}; choose from: auto, docker, bwrap, gvisor, none"
        )
    reason = backend_cls.unavailable_reason()
    if reason:
        raise SandboxUnavailable(reason)
    return _sweep(backend_cls(settings))


def _sweep(backend: SandboxBackend) -> SandboxBackend:
    """Remove per-sandbox directories a previous agent process left behind."""
    shutil.rmtree(backend.settings.run_dir / "sandboxes", ignore_errors=True)
    backend.cleanup_leftovers()
    return backend


__all__ = [
    "BACKENDS",
    "AutoBackend",
    "ResourceLimits",
    "Sandbox",
    "SandboxBackend",
    "SandboxSettings",
    "SandboxSpec",
    "auto_choice",
    "select_backend",
]
