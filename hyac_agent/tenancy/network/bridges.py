"""Docker: a bridge network per tenant with egress, ``hyac-SCOPE-TENANT``, whose Linux
bridge is ``hyacXXXXXXXXXX``. Its forwarded traffic is judged in DOCKER-USER."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from hyac_agent.tenancy.network import firewall
from hyac_agent.tenancy.network.base import TenantNetworkSet, tenant_digest

log = logging.getLogger("hyac.network")
LABEL = "org.hyac.tenant"
SCOPE_LABEL = "org.hyac.scope"


def bridge_name(scope: str, tenant: str) -> str:
    return "hyac" + tenant_digest(scope, tenant)


def network_name(scope: str, tenant: str) -> str:
    return f"hyac-{scope}-{tenant}"


def _hooks(bridge: str, chain: str) -> list[firewall.Hook]:
    return [firewall.Hook("filter", "INPUT", ("-i", bridge, "-j", "DROP")),
            firewall.Hook("filter", "DOCKER-USER", ("-i", bridge, "-j", chain))]


def _rules(bridge: str, policy: Any) -> firewall.TenantRules:
    chain = f"HYAC-{bridge[4:]}"
    return firewall.TenantRules(chain, firewall.policy_rules(policy, bridge, "RETURN"),
                                _hooks(bridge, chain))


class TenantNetworks(TenantNetworkSet):
    """Docker: a bridge network per tenant with egress."""

    def __init__(self, egress_of: Callable[[str], Any], scope: str = "",
                 client: Callable[[], Any] | None = None) -> None:
        super().__init__(egress_of, scope)
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            import docker

            return docker.from_env(timeout=30)
        return self._client()

    def network_for(self, tenant: str) -> str:
        """The network for a new container of ``tenant`` (blocking; from a thread)."""
        policy = self._policy(tenant)
        if policy == "none":
            return "none"
        self._ensure(tenant, policy)
        return network_name(self.scope, tenant)

    def _setup(self, tenant: str, policy: Any) -> None:
        name, bridge = network_name(self.scope, tenant), bridge_name(self.scope, tenant)
        client = self.client()
        if not client.networks.list(names=[name]):
            client.networks.create(
                name, driver="bridge", labels={LABEL: tenant, SCOPE_LABEL: self.scope},
                options={"com.docker.network.bridge.name": bridge,
                         "com.docker.network.bridge.enable_icc": "true"},
            )
        firewall.apply(_rules(bridge, policy))
        log.info("tenant %s: network %s (bridge %s), egress %s", tenant, name, bridge, policy)

    def cleanup_leftovers(self) -> None:
        """Remove the networks a previous run of this agent left behind."""
        try:
            networks = self.client().networks.list(filters={"label": f"{SCOPE_LABEL}={self.scope}"})
        except Exception:
            return
        for network in networks:
            tenant = (network.attrs.get("Labels") or {}).get(LABEL)
            if tenant:
                self._drop(tenant)

    def _remove_network(self, tenant: str) -> None:
        from docker.errors import NotFound

        for network in self.client().networks.list(names=[network_name(self.scope, tenant)]):
            try:
                network.reload()
            except NotFound:
                continue  # removed meanwhile
            for container in network.containers:
                with contextlib.suppress(NotFound):  # a container that is gone already
                    network.disconnect(container, force=True)
            with contextlib.suppress(NotFound):
                network.remove()

    def _drop(self, tenant: str) -> None:
        bridge = bridge_name(self.scope, tenant)
        # The network goes first, its containers cut off from it: while the bridge is up,
        # its rules are what keeps a container still running there off the host.
        problem = None
        for _attempt in range(10):  # containers still being removed race with this
            try:
                self._remove_network(tenant)
            except Exception as exc:
                problem = exc
                time.sleep(0.2)
            else:
                problem = None
                break
        if problem is not None:
            log.warning("could not remove the network of tenant %s: %s", tenant, problem)
            with contextlib.suppress(Exception):
                firewall.apply(_rules(bridge, firewall.CLOSED))
            return
        rules = _rules(bridge, firewall.CLOSED)
        firewall.remove(rules.chain, rules.hooks)
