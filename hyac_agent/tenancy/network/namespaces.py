"""bubblewrap: a network namespace per tenant with egress, ``hyacn-SCOPE-XXXXXXXXXX``,
joined to the host by a veth pair (host side ``hyacnXXXXXXXXXX``) with an address from a
private pool (``HYAC_NETNS_POOL``, 10.213.0.0/16 by default), routed and masqueraded by
the host. Its forwarded traffic is judged in FORWARD.

Addresses are read from ``ip -j`` (JSON), never from the text iproute2 prints for people.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hyac_agent.tenancy.network import firewall
from hyac_agent.tenancy.network.base import TenantNetworkSet, tenant_digest
from hyac_common.errors import SandboxUnavailable

log = logging.getLogger("hyac.network")
DEFAULT_POOL = "10.213.0.0/16"
NETNS_DIR = Path("/run/netns")
_LOCK_PATH = "/run/hyac-netns.lock"


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    """Serialises address allocation between agents on one host."""
    with open(_LOCK_PATH, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise SandboxUnavailable(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def ipv4_addresses(document: str) -> list[ipaddress.IPv4Interface]:
    """The IPv4 addresses (with their prefixes) in what ``ip -j -4 addr show`` printed.

    Links without an IPv4 address are left out, or (older iproute2) printed as ``{}``."""
    found = []
    for link in json.loads(document or "[]"):
        for info in link.get("addr_info", ()):
            if info.get("family") == "inet" and "local" in info:
                found.append(ipaddress.IPv4Interface(f"{info['local']}/{info.get('prefixlen', 32)}"))
    return found


def _used_networks() -> set[ipaddress.IPv4Network]:
    return {address.network for address in ipv4_addresses(_ip("-j", "-4", "addr", "show").stdout)}


def _hooks(host_if: str, chain: str, namespace_ip: str | None) -> list[firewall.Hook]:
    """Inserted in this order, each at the top: the jump ends up first."""
    hooks = [
        firewall.Hook("filter", "INPUT", ("-i", host_if, "-j", "DROP")),
        # Into the namespace: answers to its own connections only, nothing new from outside.
        firewall.Hook("filter", "FORWARD", ("-o", host_if, "-j", "DROP")),
        firewall.Hook("filter", "FORWARD", ("-o", host_if, "-m", "conntrack", "--ctstate",
                                            "RELATED,ESTABLISHED", "-j", "ACCEPT")),
        firewall.Hook("filter", "FORWARD", ("-i", host_if, "-j", chain)),
    ]
    if namespace_ip is not None:
        hooks.append(firewall.Hook("nat", "POSTROUTING", ("-s", f"{namespace_ip}/32", "!", "-o",
                                                          host_if, "-j", "MASQUERADE")))
    return hooks


class TenantNamespaces(TenantNetworkSet):
    """bubblewrap: a network namespace per tenant with egress, routed by the host."""

    def __init__(self, egress_of: Callable[[str], Any], scope: str, pool: str | None = None) -> None:
        super().__init__(egress_of, scope)
        try:
            self.pool = ipaddress.ip_network(pool or os.environ.get("HYAC_NETNS_POOL") or DEFAULT_POOL)
        except ValueError as exc:
            raise SandboxUnavailable(f"invalid HYAC_NETNS_POOL: {exc}") from None
        if self.pool.version != 4 or self.pool.prefixlen > 29:
            raise SandboxUnavailable("HYAC_NETNS_POOL must be an IPv4 network of /29 or larger")

    def names(self, tenant: str) -> tuple[str, str, str]:
        """(namespace, host-side interface, firewall chain) of ``tenant``."""
        return self._names(tenant_digest(self.scope, tenant))

    def _names(self, digest: str) -> tuple[str, str, str]:
        return f"hyacn-{self.scope}-{digest}", f"hyacn{digest}", f"HYACN-{digest}"

    def cleanup_leftovers(self) -> None:
        """Remove the namespaces a previous run of this agent left behind."""
        prefix = f"hyacn-{self.scope}-"
        with contextlib.suppress(OSError):
            for entry in NETNS_DIR.iterdir():
                if entry.name.startswith(prefix):
                    self._drop_digest(entry.name[len(prefix):])

    def netns_for(self, tenant: str) -> str | None:
        """The namespace path a sandbox of ``tenant`` joins; None: no network at all."""
        policy = self._policy(tenant)
        if policy == "none":
            return None
        self._ensure(tenant, policy)
        return str(NETNS_DIR / self.names(tenant)[0])

    def addresses(self, tenant: str) -> tuple[str, str] | None:
        """(host side, namespace side) addresses of a tenant's link, when it has one."""
        return self._addresses(self.names(tenant)[1])

    @staticmethod
    def _addresses(host_if: str) -> tuple[str, str] | None:
        shown = _ip("-j", "-4", "addr", "show", "dev", host_if, check=False)
        found = ipv4_addresses(shown.stdout) if shown.returncode == 0 else []
        if not found:
            return None
        return str(found[0].ip), str(found[0].ip + 1)

    def _allocate(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        used = _used_networks()
        for subnet in self.pool.subnets(new_prefix=30):
            if not any(subnet.overlaps(other) for other in used):
                return subnet
        raise SandboxUnavailable(f"no free address in HYAC_NETNS_POOL {self.pool}")

    def _setup(self, tenant: str, policy: Any) -> None:
        netns, host_if, chain = self.names(tenant)
        if self.addresses(tenant) is None:
            with _host_lock():
                self._drop(tenant)
                subnet = self._allocate()
                host_ip, ns_ip = (str(a) for a in list(subnet.hosts())[:2])
                _ip("netns", "add", netns)
                _ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns)
                _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
                _ip("link", "set", host_if, "up")
                _ip("-n", netns, "link", "set", "lo", "up")
                _ip("-n", netns, "addr", "add", f"{ns_ip}/30", "dev", "eth0")
                _ip("-n", netns, "link", "set", "eth0", "up")
                _ip("-n", netns, "route", "add", "default", "via", host_ip)
            # IPv6 is off inside: the rules below are IPv4 rules.
            off = subprocess.run(
                ["ip", "netns", "exec", netns, "sh", "-c",
                 "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
                 "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"],
                capture_output=True, text=True, timeout=20,
            )
            if off.returncode != 0 and os.path.exists("/proc/sys/net/ipv6"):
                self._drop(tenant)
                raise SandboxUnavailable(
                    f"could not turn IPv6 off in the namespace of tenant {tenant!r}: "
                    f"{off.stderr.strip()}"
                )
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        addresses = self.addresses(tenant)
        assert addresses is not None
        firewall.apply(firewall.TenantRules(chain, firewall.policy_rules(policy, host_if, "ACCEPT"),
                                            _hooks(host_if, chain, addresses[1])))
        log.info("tenant %s: namespace %s (%s), egress %s", tenant, netns, addresses[1], policy)

    def _drop(self, tenant: str) -> None:
        self._drop_digest(tenant_digest(self.scope, tenant))

    def _drop_digest(self, digest: str) -> None:
        netns, host_if, chain = self._names(digest)
        addresses = self._addresses(host_if)
        # The link goes first: while it is up, these rules are what keeps a sandbox still
        # running in the namespace off the host.
        _ip("link", "del", host_if, check=False)
        _ip("netns", "del", netns, check=False)
        firewall.remove(chain, _hooks(host_if, chain, addresses[1] if addresses else None))
