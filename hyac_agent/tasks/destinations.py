"""Where a completion callback may go: the public internet, and what the owner allows.

A tenant names the callback URL, but the agent sends the request from inside the
platform's network, so the URL must not reach what only the agent can reach: loopback,
link-local (cloud metadata at 169.254.169.254), private, shared, multicast, reserved or
unspecified addresses, and the agent's own addresses, in any spelling (``127.1``,
``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``, a name that resolves there).
``HYAC_CALLBACK_ALLOW_CIDRS`` lets the platform owner open ranges again.

The name is resolved when the callback is sent, every address it resolves to must pass,
and the request then goes to exactly the address that was checked (no second lookup, so
a DNS answer that changes in between cannot move it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hyac_common.errors import InvalidInput, RefusedDestination

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL = 2000
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: special-purpose ranges (RFC 6890) named here as well: the ``ipaddress`` tables behind
#: ``is_global`` differ between Python releases
_SPECIAL = tuple(ipaddress.ip_network(cidr) for cidr in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "2001::/23", "2001:db8::/32", "100::/64",
))


@dataclass(frozen=True)
class Destination:
    """A callback URL taken apart, and (once resolved) the one address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str = ""


def parse_allowed(values: Iterable[str]) -> list[IPNetwork]:
    """The networks of ``HYAC_CALLBACK_ALLOW_CIDRS``; InvalidInput names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise InvalidInput(f"HYAC_CALLBACK_ALLOW_CIDRS: {value!r} is not a CIDR") from None
    return networks


def parse_url(url: str, what: str = "callback_url") -> Destination:
    """Scheme, host and port of a callback URL, or InvalidInput saying what is wrong
    (``what``: how the message names the URL, e.g. a notification channel's)."""
    shown = url[:100]
    if len(url) > MAX_URL or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise InvalidInput(f"{what} must be an http:// or https:// URL, not {shown!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput(f"{what} has a bad host or port: {shown!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{what} must be an http:// or https:// URL, not {shown!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{what} must not carry a user name or password")
    default = 443 if parts.scheme == "https" else 80
    return Destination(url, parts.scheme, parts.hostname, port or default)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form the resolver accepts as a number
    (``127.1``, ``2130706433`` and ``0x7f.1`` included), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, UnicodeError, ValueError):
        return None


def refusal(
    address: IPAddress, allowed: Sequence[IPNetwork], own: Iterable[IPAddress] = ()
) -> str | None:
    """Why callbacks may not go to ``address`` (None: they may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return None
    reason = _class_refusal(address)
    if reason is None and address in set(own):
        reason = "an address of this agent"
    if reason is None and isinstance(address, ipaddress.IPv6Address):
        # 6to4, Teredo and NAT64 addresses carry an IPv4 address a relay would reach.
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded, allowed, own)
            reason = f"{inner} ({embedded}) inside an IPv6 address" if inner else None
    return reason


def _class_refusal(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global or any(address in network for network in _SPECIAL):
        return "not a public address"
    return None


def check_submitted(url: str, allowed: Sequence[IPNetwork],
                    what: str = "callback_url") -> Destination:
    """The fast check when a callback URL is set: a literal address that will never be
    allowed is refused at once (names are resolved and checked when the callback is sent)."""
    destination = parse_url(url, what)
    address = literal_address(destination.host)
    if address is not None:
        reason = refusal(address, allowed, local_addresses())
        if reason is not None:
            raise RefusedDestination(
                f"{what} {destination.host} is {reason}; webhooks go to public "
                "addresses only (the platform owner can allow more: HYAC_CALLBACK_ALLOW_CIDRS)"
            )
    return destination


def choose_address(
    destination: Destination, resolved: Sequence[str], allowed: Sequence[IPNetwork],
    own: Iterable[IPAddress],
) -> Destination:
    """The destination pinned to the first of ``resolved`` (the resolver's answers), if
    every one passes; RefusedDestination if any does not (a name that also resolves to a
    refused address is refused, whichever address a connection would have used)."""
    own = set(own)
    if not resolved:
        raise RefusedDestination(f"{destination.host} resolves to no address")
    for text in resolved:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = refusal(address, allowed, own)
        if reason is not None:
            raise RefusedDestination(f"{destination.host} resolves to {reason}")
    return Destination(destination.url, destination.scheme, destination.host, destination.port,
                       resolved[0])


class NameLookups:
    """Looks up the host names tenants choose (callback, webhook and domain check URLs)
    on threads of their own.

    ``getaddrinfo`` holds a thread until the name's servers answer, and whoever runs
    those servers decides how long that takes, up to the resolver's own limits (seconds
    per server and attempt). On the agent's shared threads, which the store and the host
    calls use, a tenant's callbacks to a slow name would hold all of them and stall
    every tenant. Here lookups get ``threads`` threads; a tenant has at most
    ``per_tenant`` lookups queued or running at once, and a caller waits at most its
    ``timeout``. A lookup that outlives its caller goes on until the resolver gives up
    and still counts against its tenant until then."""

    def __init__(self, threads: int = 8, per_tenant: int = 2) -> None:
        self.threads = threads
        self.per_tenant = per_tenant
        self._executor: ThreadPoolExecutor | None = None
        self._gates: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Semaphore] = {}

    async def addresses(self, host: str, port: int, *, tenant: str,
                        timeout: float) -> list[str]:
        """The addresses ``host`` resolves to, in the resolver's order; OSError if it
        does not resolve or the answer takes longer than ``timeout`` seconds."""
        try:
            answers = await asyncio.wait_for(self._lookup(host, port, tenant), timeout)
        except asyncio.TimeoutError:
            raise OSError(f"looking up {host} took longer than {timeout:g} s") from None
        return list(dict.fromkeys(str(info[4][0]) for info in answers))

    async def _lookup(self, host: str, port: int, tenant: str) -> list[Any]:
        loop = asyncio.get_running_loop()
        gate = self._gates.setdefault((loop, tenant), asyncio.Semaphore(self.per_tenant))
        await gate.acquire()

        def release(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(gate.release)

        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="hyac-dns")
        try:
            looking = self._executor.submit(socket.getaddrinfo, host, port,
                                            type=socket.SOCK_STREAM)
        except BaseException:
            gate.release()
            raise
        # Released when the lookup ends, or when it is dropped before it started.
        looking.add_done_callback(release)
        return await asyncio.wrap_future(looking)


#: the agent's one set of lookup threads
LOOKUPS = NameLookups()


async def resolve(destination: Destination, allowed: Sequence[IPNetwork], *, tenant: str,
                  timeout: float) -> Destination:
    """Resolve ``tenant``'s ``destination`` (on ``LOOKUPS``) and check every address:
    OSError if the name does not resolve in ``timeout`` seconds, RefusedDestination if
    an address is refused."""
    resolved = await LOOKUPS.addresses(destination.host, destination.port, tenant=tenant,
                                       timeout=timeout)
    own = await asyncio.to_thread(local_addresses)
    return choose_address(destination, resolved, allowed, own)


def local_addresses() -> set[IPAddress]:
    """Every address of this host's interfaces (Linux: from /proc), so a callback cannot
    reach a service the agent's host offers on its public address either."""
    found: set[IPAddress] = set()
    try:
        previous = ""
        for line in Path("/proc/net/fib_trie").read_text().splitlines():
            text = line.strip()
            if text.startswith("|--"):
                previous = text[3:].strip()
            elif text == "/32 host LOCAL" and previous:
                found.add(ipaddress.IPv4Address(previous))
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            found.add(ipaddress.IPv6Address(int(line.split()[0], 16)))
    except (OSError, ValueError, IndexError):
        pass
    return found
