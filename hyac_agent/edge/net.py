"""Client addresses: networks, matching, and the forwarded headers of trusted proxies.

Addresses are compared as ``ipaddress`` objects: an IPv4 address seen on an IPv6 socket
(``::ffff:192.0.2.1``) is the IPv4 address, so one rule covers both.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from hyac_common.errors import InvalidCidr

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """``text`` as a network (a bare address is a /32 or /128); InvalidCidr otherwise.
    Host bits set (``10.0.0.1/8``) are refused: the rule would not say what it means."""
    value = text.strip() if isinstance(text, str) else ""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidCidr(f"invalid network {text!r}: {exc}", cidr=text) from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        mapped = network.network_address.ipv4_mapped
        prefix = max(network.prefixlen - 96, 0)
        return ipaddress.IPv4Network(f"{mapped}/{prefix}", strict=False)
    return network


# Every gateway request parses its peer's address: the few a server sees are kept parsed.
@functools.lru_cache(maxsize=4096)
def parse_address(text: str | None) -> Address | None:
    """The address in ``text`` (None when it is none: a Unix socket, garbage)."""
    if not text:
        return None
    value = text.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1:value.index("]")]
    elif value.count(":") == 1:  # "192.0.2.1:443"
        value = value.split(":", 1)[0]
    value = value.split("%", 1)[0]  # a zone id says which link, not which host
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def matches(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _forwarded_for(value: str) -> list[str]:
    """The ``for=`` addresses of an RFC 7239 ``Forwarded`` header, first hop first."""
    hops: list[str] = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, item = pair.strip().partition("=")
            if name.strip().lower() == "for":
                hops.append(item.strip().strip('"'))
    return hops


def client_address(peer: str | None, headers: Mapping[str, str],
                   trusted: Sequence[Network]) -> Address | None:
    """Who is calling. The peer is, unless it is a trusted proxy: then the forwarded
    headers (``Forwarded`` first, else ``X-Forwarded-For``) are read from the nearest hop
    outwards, and the first address that is not itself a trusted proxy is the client.
    A header from anyone else is ignored: it is whatever the caller wrote."""
    address = parse_address(peer)
    if address is None or not trusted or not matches(address, trusted):
        return address
    forwarded = headers.get("forwarded")
    hops = _forwarded_for(forwarded) if forwarded else [
        hop.strip() for hop in (headers.get("x-forwarded-for") or "").split(",") if hop.strip()
    ]
    for hop in reversed(hops):
        hop_address = parse_address(hop)
        if hop_address is None:
            return address  # "unknown" or garbage: the last address known for sure
        if not matches(hop_address, trusted):
            return hop_address
        address = hop_address
    return address


def rate_key(address: Address | None, fallback: str) -> str:
    """Whose requests a rate limit counts together: an IPv4 address, or an IPv6 /64 (one
    site gets a whole /64 and could otherwise rotate through it)."""
    if address is None:
        return fallback
    if address.version == 6:
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)
