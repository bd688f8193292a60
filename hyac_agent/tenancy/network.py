"""Per-tenant Docker networks and the firewall rules that keep them in their lane.

A tenant whose egress is ``none`` (the default) gets ``network_mode=none``: no interface
but loopback. Any other policy gets a bridge network of its own, ``hyac-t-NAME`` (its
Linux bridge is ``hyacXXXXXXXXXX``), and iptables rules on that bridge:

- INPUT: everything from the bridge to the host itself is dropped, so no address of the
  host (the bridge's gateway, its LAN address, anything it listens on) is reachable,
  the agent's port included. The host's loopback is never reachable from a container
  anyway (127.0.0.1 inside is the container's own).
- DOCKER-USER (forwarded traffic): link-local addresses (cloud metadata) are dropped;
  for an allowlist, everything but the listed CIDRs (host names are resolved when the
  network is set up) is dropped. Docker's own isolation rules already drop traffic
  between two of its bridge networks, so tenants never reach each other.

``allow`` therefore means: the internet and the rest of the LAN, not this host. That is
what is enforced; anything finer (DNS names that change address) is not.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from hyac_common.errors import SandboxUnavailable

log = logging.getLogger("hyac.network")
LABEL = "org.hyac.tenant"


def bridge_name(tenant: str) -> str:
    return "hyac" + hashlib.sha256(tenant.encode()).hexdigest()[:10]


def network_name(tenant: str) -> str:
    return f"hyac-t-{tenant}"


def _iptables(*args: str, check: bool = True) -> bool:
    result = subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise SandboxUnavailable(f"iptables {' '.join(args)} failed: {result.stderr.strip()}")
    return result.returncode == 0


def _resolve(entries: list[str]) -> list[str]:
    cidrs: list[str] = []
    for entry in entries:
        try:
            cidrs.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            for info in socket.getaddrinfo(entry, None, socket.AF_INET):
                cidrs.append(f"{info[4][0]}/32")
    return sorted(set(cidrs))


class TenantNetworks:
    def __init__(self, egress_of: Callable[[str], Any], client: Callable[[], Any] | None = None) -> None:
        self.egress_of = egress_of
        self._client = client
        self._ready: dict[str, str] = {}
        self._lock = threading.Lock()

    def client(self) -> Any:
        if self._client is None:
            import docker

            return docker.from_env(timeout=30)
        return self._client()

    def network_for(self, tenant: str) -> str:
        """The network for a new container of ``tenant`` (blocking; from a thread)."""
        policy = self.egress_of(tenant) if tenant else "none"
        if policy == "none":
            return "none"
        if shutil.which("iptables") is None:
            raise SandboxUnavailable("tenant egress needs iptables on the docker host")
        signature = repr(policy)
        with self._lock:
            if self._ready.get(tenant) != signature:
                self._setup(tenant, policy)
                self._ready[tenant] = signature
        return network_name(tenant)

    def _setup(self, tenant: str, policy: Any) -> None:
        name, bridge = network_name(tenant), bridge_name(tenant)
        client = self.client()
        if not client.networks.list(names=[name]):
            client.networks.create(
                name, driver="bridge", labels={LABEL: tenant},
                options={"com.docker.network.bridge.name": bridge,
                         "com.docker.network.bridge.enable_icc": "true"},
            )
        # The host itself: nothing from this bridge may reach it.
        if not _iptables("-C", "INPUT", "-i", bridge, "-j", "DROP", check=False):
            _iptables("-I", "INPUT", "1", "-i", bridge, "-j", "DROP")
        chain = f"HYAC-{bridge[4:]}"
        if not _iptables("-N", chain, check=False):
            _iptables("-F", chain)
        _iptables("-A", chain, "-d", "169.254.0.0/16", "-j", "DROP")
        if isinstance(policy, list):
            for cidr in _resolve(policy):
                _iptables("-A", chain, "-d", cidr, "-j", "RETURN")
            _iptables("-A", chain, "-j", "DROP")
        if not _iptables("-C", "DOCKER-USER", "-i", bridge, "-j", chain, check=False):
            _iptables("-I", "DOCKER-USER", "1", "-i", bridge, "-j", chain)
        log.info("tenant %s: network %s (bridge %s), egress %s", tenant, name, bridge, policy)

    def drop(self, tenant: str) -> None:
        """Remove the tenant's network and rules (its containers must be gone)."""
        bridge = bridge_name(tenant)
        chain = f"HYAC-{bridge[4:]}"
        with self._lock:
            self._ready.pop(tenant, None)
            while _iptables("-D", "INPUT", "-i", bridge, "-j", "DROP", check=False):
                pass
            while _iptables("-D", "DOCKER-USER", "-i", bridge, "-j", chain, check=False):
                pass
            _iptables("-F", chain, check=False)
            _iptables("-X", chain, check=False)
            try:
                for network in self.client().networks.list(names=[network_name(tenant)]):
                    network.remove()
            except Exception as exc:
                log.warning("could not remove the network of tenant %s: %s", tenant, exc)
