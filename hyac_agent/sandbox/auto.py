"""The automatic choice, per runtime: docker where it has an image, else bubblewrap.

An agent on a host with Docker serves Python from its runtime images; a runtime the
Docker engine has no image for (another Python version, node20, deno) still runs,
under bubblewrap, instead of failing. Both are hardened sandboxes; `hyac-agent doctor`
and `hyac runtime ls` say which one serves which runtime. Naming a backend explicitly
(`--sandbox docker`) keeps the strict behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyac_agent.runtimes import Runtime
from hyac_agent.sandbox.base import Sandbox, SandboxBackend, SandboxSettings, SandboxSpec
from hyac_common.errors import InvalidInput


class AutoBackend(SandboxBackend):
    """Docker first, bubblewrap for the runtimes docker cannot serve."""

    name = "docker"

    def __init__(
        self, primary: SandboxBackend, fallback: SandboxBackend, settings: SandboxSettings
    ) -> None:
        super().__init__(settings)
        self.primary = primary
        self.fallback = fallback
        self._owners: dict[str, SandboxBackend] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def backend_for(self, runtime_name: str) -> SandboxBackend:
        owner = self._owners.get(runtime_name)
        if owner is None:
            try:
                self.primary.resolve_runtime(runtime_name)
                owner = self.primary
            except InvalidInput:
                owner = self.fallback
            self._owners[runtime_name] = owner
        return owner

    def resolve_runtime(self, name: str) -> Runtime:
        owner = self.backend_for(name)
        try:
            return owner.resolve_runtime(name)
        except InvalidInput:
            if owner is self.primary:  # e.g. the image was removed since: try again
                self._owners.pop(name, None)
                return self.backend_for(name).resolve_runtime(name)
            raise

    async def start(self, spec: SandboxSpec) -> Sandbox:
        return await self.backend_for(spec.runtime.name).start(spec)

    def code_mount(self, spec: SandboxSpec) -> str:
        return self.backend_for(spec.runtime.name).code_mount(spec)

    def sandbox_root(self, spec: SandboxSpec) -> Path:
        return self.backend_for(spec.runtime.name).sandbox_root(spec)

    def attach_networks(self, egress_of: Callable[[str], Any], scope: str) -> None:
        self.primary.attach_networks(egress_of, scope)
        self.fallback.attach_networks(egress_of, scope)
        parts = [b.networks for b in (self.primary, self.fallback) if b.networks is not None]
        self.networks = _Networks(parts) if parts else None

    def egress_unavailable(self) -> str | None:
        return self.primary.egress_unavailable() or self.fallback.egress_unavailable()

    def cleanup_leftovers(self) -> None:
        self.primary.cleanup_leftovers()
        self.fallback.cleanup_leftovers()

    def describe(self) -> dict[str, object]:
        return {
            "backend": "auto",
            "choice": (
                f"{self.primary.name} for the runtimes it has images for, "
                f"{self.fallback.name} for the others"
            ),
            "served_by": {name: owner.name for name, owner in sorted(self._owners.items())},
            self.primary.name: self.primary.describe(),
            self.fallback.name: self.fallback.describe(),
        }


class _Networks:
    """The per-tenant networks of both backends, dropped and closed together."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def drop(self, tenant: str) -> None:
        for part in self.parts:
            part.drop(tenant)

    def refresh(self, tenant: str) -> None:
        for part in self.parts:
            part.refresh(tenant)

    def close(self) -> None:
        for part in self.parts:
            part.close()
