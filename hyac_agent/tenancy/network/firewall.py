"""A tenant's iptables rules, changed as one: each change is a single
``iptables-restore --noflush``, so a tenant never sits with half its rules (a chain
flushed and not yet refilled, a policy without its final DROP). A change that fails,
in a host name that does not resolve or a rule iptables refuses, leaves the rules as
they were.

A tenant's rules are a chain of its own (what its forwarded traffic may reach) and
*hooks*: rules at the top of the built-in chains that send the tenant's interface there
or drop what it sends the host. Every rule names the tenant's interface, so taking its
hooks and chain away removes exactly its rules.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyac_common.errors import SandboxUnavailable

log = logging.getLogger("hyac.network")

# Interfaces no tenant may send to: other tenants' (every hyac interface starts with
# "hyac") and the host's other Docker networks.
_FOREIGN_INTERFACES = ("hyac+", "docker+", "br-+")
_METADATA = "169.254.0.0/16"
CLOSED = "closed"  # a network whose tenant no longer has egress: nothing leaves it
#: removal rounds at most: each takes away one copy of every hook still there
_REMOVAL_ROUNDS = 5

Rule = tuple[str, ...]


@dataclass(frozen=True)
class Hook:
    """A rule at the top of a built-in chain (``table``, ``chain``)."""

    table: str
    chain: str
    rule: Rule


@dataclass(frozen=True)
class TenantRules:
    """Everything the firewall holds for one tenant: its own ``chain`` (in the filter
    table) with the rules ``body``, and its hooks, in the order they are inserted at the
    top of their chains (so the last one ends up first)."""

    chain: str
    body: Sequence[Rule]
    hooks: Sequence[Hook]


def _iptables(*args: str, check: bool = True) -> bool:
    result = subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise SandboxUnavailable(f"iptables {' '.join(args)} failed: {result.stderr.strip()}")
    return result.returncode == 0


def _has(hook: Hook) -> bool:
    return _iptables("-t", hook.table, "-C", hook.chain, *hook.rule, check=False)


def _has_chain(chain: str) -> bool:
    return _iptables("-S", chain, check=False)


def restore(tables: dict[str, list[Rule]]) -> None:
    """One ``iptables-restore --noflush`` of these commands per table: all of them take
    effect, or (SandboxUnavailable) none."""
    lines: list[str] = []
    for table, commands in tables.items():
        if commands:
            lines += [f"*{table}", *(" ".join(command) for command in commands), "COMMIT"]
    if not lines:
        return
    result = subprocess.run(["iptables-restore", "-w", "5", "--noflush"], input="\n".join(lines) + "\n",
                            capture_output=True, text=True, timeout=20)
    if result.returncode != 0:
        raise SandboxUnavailable(f"iptables-restore failed: {result.stderr.strip()}")


def apply(rules: TenantRules) -> None:
    """Give the tenant exactly these rules: its chain made or emptied and filled, and
    the hooks it lacks inserted, in one restore."""
    tables: dict[str, list[Rule]] = {"filter": [(f":{rules.chain}", "-", "[0:0]")], "nat": []}
    tables["filter"] += [("-A", rules.chain, *rule) for rule in rules.body]
    for hook in rules.hooks:
        if not _has(hook):
            tables.setdefault(hook.table, []).append(("-I", hook.chain, "1", *hook.rule))
    restore(tables)


def _removal(hooks: Sequence[Hook], chain: str | None) -> dict[str, list[Rule]]:
    tables: dict[str, list[Rule]] = {"filter": [], "nat": []}
    for hook in hooks:
        tables.setdefault(hook.table, []).append(("-D", hook.chain, *hook.rule))
    if chain is not None:
        tables["filter"] += [("-F", chain), ("-X", chain)]
    return tables


def remove(chain: str, hooks: Sequence[Hook]) -> None:
    """Take the tenant's hooks and chain away in one restore (a round more for each extra
    copy of a hook a crash left); what cannot be removed is logged and left."""
    for _round in range(_REMOVAL_ROUNDS):
        present = [hook for hook in hooks if _has(hook)]
        with_chain = _has_chain(chain)
        if not present and not with_chain:
            return
        try:
            restore(_removal(present, chain if with_chain else None))
            continue
        except SandboxUnavailable as exc:
            problem = exc
        if present and with_chain:  # a second copy of a jump holds the chain: hooks first
            with contextlib.suppress(SandboxUnavailable):
                restore(_removal(present, None))
                continue
        log.warning("could not remove the firewall rules of chain %s: %s", chain, problem)
        return


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


def policy_rules(policy: Any, own: str, final: str) -> list[Rule]:
    """The forwarding rules of one tenant, for its own chain.

    ``final`` is what an allowed packet does at the end: RETURN (Docker's own FORWARD
    rules then accept it) or ACCEPT. Host names of an allowlist are resolved here, before
    any rule changes.
    """
    rules: list[Rule] = [("-o", own, "-j", final)]
    if policy == CLOSED:
        return [*rules, ("-j", "DROP")]
    rules += [("-o", interface, "-j", "DROP") for interface in _FOREIGN_INTERFACES]
    rules.append(("-d", _METADATA, "-j", "DROP"))
    if not isinstance(policy, list):
        return [*rules, ("-j", final)]
    for server in name_servers():
        for proto in ("udp", "tcp"):
            rules.append(("-d", server, "-p", proto, "--dport", "53", "-j", final))
    rules += [("-d", cidr, "-j", final) for cidr in _resolve(policy)]
    return [*rules, ("-j", "DROP")]
