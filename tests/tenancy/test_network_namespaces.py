"""Addresses of a tenant's link read from ``ip -j`` (hyac_agent/tenancy/network/namespaces.py):
what this host's iproute2 prints, checked against its one-line text output; a link of our
own with a known address (and a point-to-point one); a link with no IPv4 address and one
that does not exist; and the ``{}`` older iproute2 prints for links without IPv4.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from hyac_agent.tenancy.network.namespaces import TenantNamespaces, _used_networks, ipv4_addresses
from tests.waiting import eventually

TAG = f"{os.getpid() % 100000:05d}"
LINK, PEER = f"hyacj{TAG}", f"hyack{TAG}"


def ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def veth() -> Iterator[str]:
    """A veth pair of our own: 10.254.97.1/30 and a point-to-point address on one end,
    no IPv4 address on the other."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("LINK ADDRESSES NOT TESTED: making a link needs root and iproute2")
    ip("link", "add", LINK, "type", "veth", "peer", "name", PEER)
    try:
        ip("addr", "add", "10.254.97.1/30", "dev", LINK)
        ip("addr", "add", "10.254.98.1", "peer", "10.254.98.2/32", "dev", LINK)
        yield LINK
    finally:
        subprocess.run(["ip", "link", "del", LINK], capture_output=True, timeout=20)


def test_the_json_agrees_with_the_text_iproute2_prints(veth: str) -> None:
    def agree() -> list[ipaddress.IPv4Interface] | None:
        # (read twice: links of other tests may come and go between the two)
        text = ip("-4", "-o", "addr", "show")
        expected = [ipaddress.IPv4Interface(m) for m in re.findall(r"\binet (\S+)", text)]
        return expected if ipv4_addresses(ip("-j", "-4", "addr", "show")) == expected else None

    seen = eventually(agree, timeout=30)
    assert ipaddress.IPv4Interface("10.254.97.1/30") in seen
    assert ipaddress.IPv4Interface("10.254.98.1/32") in seen


def test_a_links_addresses_and_the_networks_in_use(veth: str) -> None:
    assert TenantNamespaces._addresses(veth) == ("10.254.97.1", "10.254.97.2")
    assert TenantNamespaces._addresses(PEER) is None, "no IPv4 address"
    assert TenantNamespaces._addresses(f"hyacz{TAG}") is None, "no such link"
    used = _used_networks()
    assert {ipaddress.ip_network("10.254.97.0/30"), ipaddress.ip_network("10.254.98.1/32"),
            ipaddress.ip_network("127.0.0.0/8")} <= used


def test_what_older_iproute2_prints() -> None:
    printed = json.dumps([
        {},
        {"ifindex": 3, "ifname": "hyacn1", "addr_info": [
            {"family": "inet", "local": "10.213.0.1", "prefixlen": 30, "scope": "global"},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
        {"ifindex": 4, "ifname": "tun0", "addr_info": [
            {"family": "inet", "local": "10.9.0.1", "address": "10.9.0.2", "prefixlen": 32}]},
    ])
    assert ipv4_addresses(printed) == [ipaddress.IPv4Interface("10.213.0.1/30"),
                                       ipaddress.IPv4Interface("10.9.0.1/32")]
    assert ipv4_addresses("") == [] and ipv4_addresses("[]") == []
