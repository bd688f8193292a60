"""Client addresses on their own: parsing, forwarded headers, rate-limit keys."""

from __future__ import annotations

import ipaddress

import pytest

from hyac_agent.edge.net import client_address, parse_address, parse_network, rate_key
from hyac_common.errors import InvalidCidr

TRUSTED = [parse_network("10.0.0.0/8")]


def test_ipv6_clients_are_rate_limited_by_their_64() -> None:
    one = parse_address("2001:db8:1:2::1")
    other = parse_address("2001:db8:1:2:ffff::9")
    elsewhere = parse_address("2001:db8:1:3::1")
    assert rate_key(one, "") == rate_key(other, "") == "2001:db8:1:2::/64"
    assert rate_key(elsewhere, "") != rate_key(one, "")
    assert rate_key(parse_address("192.0.2.7"), "") == "192.0.2.7"
    assert rate_key(None, "unix") == "unix"


@pytest.mark.parametrize("text", ["10.0.0.1/8", "nonsense", "", "300.1.1.1", "::1/129"])
def test_bad_networks_are_refused(text: str) -> None:
    with pytest.raises(InvalidCidr):
        parse_network(text)


def test_mapped_and_bracketed_addresses() -> None:
    assert parse_network("::ffff:192.0.2.0/120") == ipaddress.IPv4Network("192.0.2.0/24")
    assert parse_address("[2001:db8::1]:443") == ipaddress.IPv6Address("2001:db8::1")
    assert parse_address("192.0.2.1:80") == ipaddress.IPv4Address("192.0.2.1")
    assert parse_address("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    assert parse_address("unknown") is None


def test_forwarded_hops_are_read_from_the_right_past_trusted_proxies() -> None:
    headers = {"x-forwarded-for": "198.51.100.1, 203.0.113.5, 10.1.1.1"}
    assert str(client_address("10.0.0.2", headers, TRUSTED)) == "203.0.113.5"
    assert str(client_address("192.0.2.9", headers, TRUSTED)) == "192.0.2.9"  # not a proxy
    assert str(client_address("10.0.0.2", {}, TRUSTED)) == "10.0.0.2"
    garbage = {"x-forwarded-for": "not-an-address"}
    assert str(client_address("10.0.0.2", garbage, TRUSTED)) == "10.0.0.2"
    forwarded = {"forwarded": 'for="[2001:db8::7]:4711";proto=https, for=10.2.2.2',
                 "x-forwarded-for": "198.51.100.1"}
    assert str(client_address("10.0.0.2", forwarded, TRUSTED)) == "2001:db8::7"
