"""What Docker bridges and network namespaces share: names per agent and tenant, the
tools they need, and the egress policy per tenant, set up once per policy."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyac_agent.tenancy.network.firewall import CLOSED
from hyac_common.errors import SandboxUnavailable


def scope_of(run_dir: Path | str) -> str:
    """A short id of one agent (its run directory), part of every network name."""
    return hashlib.sha256(str(run_dir).encode()).hexdigest()[:6]


def tenant_digest(scope: str, tenant: str) -> str:
    return hashlib.sha256(f"{scope}/{tenant}".encode()).hexdigest()[:10]


def missing_tools() -> str | None:
    """Why per-tenant networks cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "the agent is not running as root (it must create networks and firewall rules)"
    for tool in ("iptables", "iptables-restore", "ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install iptables iproute2 util-linux)"
    return None


class TenantNetworkSet:
    """The egress policy per tenant, each network set up once per policy."""

    def __init__(self, egress_of: Callable[[str], Any], scope: str) -> None:
        self.egress_of = egress_of
        self.scope = scope
        self._ready: dict[str, str] = {}
        self._lock = threading.Lock()

    def _policy(self, tenant: str) -> Any:
        policy = self.egress_of(tenant) if tenant else "none"
        if policy == "none" and tenant in self._ready:
            # Egress was taken away: sandboxes still draining on the network lose it now.
            self._ensure(tenant, CLOSED)
        elif policy != "none":
            reason = missing_tools()
            if reason:
                raise SandboxUnavailable(f"tenant {tenant!r} has egress {policy!r}, but {reason}")
        return policy

    def _ensure(self, tenant: str, policy: Any) -> None:
        signature = repr(policy)
        with self._lock:
            if self._ready.get(tenant) != signature:
                self._setup(tenant, policy)
                self._ready[tenant] = signature

    def _setup(self, tenant: str, policy: Any) -> None:
        raise NotImplementedError

    def refresh(self, tenant: str) -> None:
        """Apply the tenant's egress policy now to a network it already has, so sandboxes
        still running on it follow a change at once (not at the next sandbox start)."""
        if tenant not in self._ready:
            return
        policy = self._policy(tenant)
        if policy != "none":
            self._ensure(tenant, policy)

    def drop(self, tenant: str) -> None:
        with self._lock:
            self._ready.pop(tenant, None)
            self._drop(tenant)

    def _drop(self, tenant: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Remove every network this agent made (its sandboxes must be gone)."""
        with self._lock:
            for tenant in list(self._ready):
                self._drop(tenant)
            self._ready.clear()
        self.cleanup_leftovers()  # and those a removed tenant's draining sandboxes held

    def cleanup_leftovers(self) -> None:
        raise NotImplementedError
