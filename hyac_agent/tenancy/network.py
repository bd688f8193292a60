"""Per-tenant networks and the firewall rules that keep them in their lane.

A tenant whose egress is ``none`` (the default) gets no network at all: its sandboxes
have only their own loopback. Any other policy gives the tenant a network of its own:

- docker: a bridge network, ``hyac-SCOPE-TENANT`` (its Linux bridge is ``hyacXXXXXXXXXX``);
- bwrap: a network namespace, ``hyacn-SCOPE-XXXXXXXXXX``, joined to the host by a veth
  pair (host side ``hyacnXXXXXXXXXX``) with an address from a private pool
  (``HYAC_NETNS_POOL``, 10.213.0.0/16 by default), routed and masqueraded by the host.

SCOPE identifies the agent (its run directory), so two agents on one host never share a
network even for tenants of the same name. Both kinds get the same iptables rules:

- INPUT: everything from the tenant's interface to the host itself is dropped, so no
  address of the host (the gateway, its LAN address, anything it listens on) is
  reachable, the agent's port included. The host's loopback is never reachable from a
  sandbox anyway (127.0.0.1 inside is the sandbox's own).
- Forwarded traffic (DOCKER-USER for bridges, FORWARD for namespaces): nothing to another
  tenant's network or to other local Docker networks, nothing to link-local addresses
  (cloud metadata); for an allowlist, nothing but the listed CIDRs (host names are
  resolved when the network is set up) and DNS to the host's name servers.

``allow`` therefore means: the internet and the rest of the LAN, not this host and not
another tenant. That is what is enforced; anything finer (DNS names that change address)
is not. Every rule names the tenant's interface, so removing a tenant's network removes
exactly its rules; an agent removes its networks when it stops.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hyac_common.errors import SandboxUnavailable

log = logging.getLogger("hyac.network")
LABEL = "org.hyac.tenant"
SCOPE_LABEL = "org.hyac.scope"
DEFAULT_POOL = "10.213.0.0/16"
NETNS_DIR = Path("/run/netns")
_LOCK_PATH = "/run/hyac-netns.lock"
# Interfaces no tenant may send to: other tenants' (every hyac interface starts with
# "hyac") and the host's other Docker networks.
_FOREIGN_INTERFACES = ("hyac+", "docker+", "br-+")
_METADATA = "169.254.0.0/16"
_CLOSED = "closed"  # a network whose tenant no longer has egress: nothing leaves it


def scope_of(run_dir: Path | str) -> str:
    """A short id of one agent (its run directory), part of every network name."""
    return hashlib.sha256(str(run_dir).encode()).hexdigest()[:6]


def _digest(scope: str, tenant: str) -> str:
    return hashlib.sha256(f"{scope}/{tenant}".encode()).hexdigest()[:10]


def bridge_name(scope: str, tenant: str) -> str:
    return "hyac" + _digest(scope, tenant)


def network_name(scope: str, tenant: str) -> str:
    return f"hyac-{scope}-{tenant}"


def _iptables(*args: str, check: bool = True) -> bool:
    result = subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise SandboxUnavailable(f"iptables {' '.join(args)} failed: {result.stderr.strip()}")
    return result.returncode == 0


def _ensure_rule(chain: str, *rule: str, table: str = "filter") -> None:
    """Insert ``rule`` at the top of ``chain`` unless it is there already."""
    if not _iptables("-t", table, "-C", chain, *rule, check=False):
        _iptables("-t", table, "-I", chain, "1", *rule)


def _delete_rule(chain: str, *rule: str, table: str = "filter") -> None:
    while _iptables("-t", table, "-D", chain, *rule, check=False):
        pass


def _resolve(entries: list[str]) -> list[str]:
    cidrs: list[str] = []
    for entry in entries:
        try:
            cidrs.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            try:
                infos = socket.getaddrinfo(entry, None, socket.AF_INET)
            except OSError as exc:
                raise SandboxUnavailable(f"egress host {entry!r} does not resolve: {exc}") from None
            for info in infos:
                cidrs.append(f"{info[4][0]}/32")
    return sorted(set(cidrs))


def name_servers(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's IPv4 name servers a sandbox can reach (not loopback ones)."""
    servers: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                try:
                    address = ipaddress.ip_address(parts[1])
                except ValueError:
                    continue
                if address.version == 4 and not address.is_loopback:
                    servers.append(str(address))
    return servers


def _fill_policy_chain(chain: str, policy: Any, own: str, final: str) -> None:
    """The forwarding rules of one tenant, in a chain of its own (flushed first).

    ``final`` is what an allowed packet does at the end: RETURN (Docker's own FORWARD
    rules then accept it) or ACCEPT.
    """
    if not _iptables("-N", chain, check=False):
        _iptables("-F", chain)
    _iptables("-A", chain, "-o", own, "-j", final)
    if policy == _CLOSED:
        _iptables("-A", chain, "-j", "DROP")
        return
    for interface in _FOREIGN_INTERFACES:
        _iptables("-A", chain, "-o", interface, "-j", "DROP")
    _iptables("-A", chain, "-d", _METADATA, "-j", "DROP")
    if isinstance(policy, list):
        for server in name_servers():
            for proto in ("udp", "tcp"):
                _iptables("-A", chain, "-d", server, "-p", proto, "--dport", "53", "-j", final)
        for cidr in _resolve(policy):
            _iptables("-A", chain, "-d", cidr, "-j", final)
        _iptables("-A", chain, "-j", "DROP")
    else:
        _iptables("-A", chain, "-j", final)


def _remove_chain(chain: str) -> None:
    _iptables("-F", chain, check=False)
    _iptables("-X", chain, check=False)


def missing_tools() -> str | None:
    """Why per-tenant networks cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "the agent is not running as root (it must create networks and firewall rules)"
    for tool in ("iptables", "ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install iptables iproute2 util-linux)"
    return None


class _TenantNetworkSet:
    """What both kinds share: the egress policy per tenant, set up once per policy."""

    def __init__(self, egress_of: Callable[[str], Any], scope: str) -> None:
        self.egress_of = egress_of
        self.scope = scope
        self._ready: dict[str, str] = {}
        self._lock = threading.Lock()

    def _policy(self, tenant: str) -> Any:
        policy = self.egress_of(tenant) if tenant else "none"
        if policy == "none" and tenant in self._ready:
            # Egress was taken away: sandboxes still draining on the network lose it now.
            self._ensure(tenant, _CLOSED)
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


class TenantNetworks(_TenantNetworkSet):
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
        _ensure_rule("INPUT", "-i", bridge, "-j", "DROP")
        chain = f"HYAC-{bridge[4:]}"
        _fill_policy_chain(chain, policy, bridge, "RETURN")
        _ensure_rule("DOCKER-USER", "-i", bridge, "-j", chain)
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
        chain = f"HYAC-{bridge[4:]}"
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
                _fill_policy_chain(chain, _CLOSED, bridge, "RETURN")
            return
        _delete_rule("INPUT", "-i", bridge, "-j", "DROP")
        _delete_rule("DOCKER-USER", "-i", bridge, "-j", chain)
        _remove_chain(chain)


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


def _used_networks() -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    used = set()
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        match = re.search(r"\binet (\S+)", line)
        if match:
            used.add(ipaddress.ip_interface(match.group(1)).network)
    return used


class TenantNamespaces(_TenantNetworkSet):
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
        return self._names(_digest(self.scope, tenant))

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
        out = _ip("-4", "-o", "addr", "show", "dev", host_if, check=False).stdout
        match = re.search(r"\binet (\S+)", out)
        if not match:
            return None
        interface = ipaddress.ip_interface(match.group(1))
        return str(interface.ip), str(interface.ip + 1)

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
        _ensure_rule("INPUT", "-i", host_if, "-j", "DROP")
        _fill_policy_chain(chain, policy, host_if, "ACCEPT")
        # Into the namespace: answers to its own connections only, nothing new from outside.
        _ensure_rule("FORWARD", "-o", host_if, "-j", "DROP")
        _ensure_rule("FORWARD", "-o", host_if, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                     "-j", "ACCEPT")
        _ensure_rule("FORWARD", "-i", host_if, "-j", chain)
        _ensure_rule("POSTROUTING", "-s", f"{addresses[1]}/32", "!", "-o", host_if, "-j", "MASQUERADE",
                     table="nat")
        log.info("tenant %s: namespace %s (%s), egress %s", tenant, netns, addresses[1], policy)

    def _drop(self, tenant: str) -> None:
        self._drop_digest(_digest(self.scope, tenant))

    def _drop_digest(self, digest: str) -> None:
        netns, host_if, chain = self._names(digest)
        addresses = self._addresses(host_if)
        # The link goes first: while it is up, these rules are what keeps a sandbox still
        # running in the namespace off the host.
        _ip("link", "del", host_if, check=False)
        _ip("netns", "del", netns, check=False)
        _delete_rule("INPUT", "-i", host_if, "-j", "DROP")
        _delete_rule("FORWARD", "-i", host_if, "-j", chain)
        _delete_rule("FORWARD", "-o", host_if, "-j", "DROP")
        _delete_rule("FORWARD", "-o", host_if, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                     "-j", "ACCEPT")
        if addresses is not None:
            _delete_rule("POSTROUTING", "-s", f"{addresses[1]}/32", "!", "-o", host_if, "-j",
                         "MASQUERADE", table="nat")
        _remove_chain(chain)
