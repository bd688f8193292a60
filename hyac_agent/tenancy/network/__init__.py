"""Per-tenant networks and the firewall rules that keep them in their lane.

A tenant whose egress is ``none`` (the default) gets no network at all: its sandboxes
have only their own loopback. Any other policy gives the tenant a network of its own:

- docker: a bridge network (``bridges``);
- bwrap: a network namespace joined to the host by a veth pair, routed and masqueraded
  by the host (``namespaces``).

Each name carries a SCOPE that identifies the agent (its run directory), so two agents on
one host never share a network even for tenants of the same name. Both kinds get the same
iptables rules (``firewall``), each change applied as one:

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

from hyac_agent.tenancy.network.base import missing_tools, scope_of
from hyac_agent.tenancy.network.bridges import (
    LABEL,
    SCOPE_LABEL,
    TenantNetworks,
    bridge_name,
    network_name,
)
from hyac_agent.tenancy.network.firewall import name_servers
from hyac_agent.tenancy.network.namespaces import DEFAULT_POOL, NETNS_DIR, TenantNamespaces

__all__ = [
    "DEFAULT_POOL",
    "LABEL",
    "NETNS_DIR",
    "SCOPE_LABEL",
    "TenantNamespaces",
    "TenantNetworks",
    "bridge_name",
    "missing_tools",
    "name_servers",
    "network_name",
    "scope_of",
]
