"""A tenant's firewall rules change as one (hyac_agent/tenancy/network/firewall.py), on
this host's real iptables: one ``iptables-restore`` per change, and a change that fails
midway (a rule iptables refuses, a host name that does not resolve) leaves the tenant's
previous rules exactly as they were. The rules name an interface of their own that no
traffic uses, and are removed after each test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from hyac_agent.tenancy.network import firewall
from hyac_agent.tenancy.network.namespaces import _hooks
from hyac_common.errors import SandboxUnavailable

TAG = f"{os.getpid() % 100000:05d}"
INTERFACE = f"hyact{TAG}"
CHAIN = f"HYACT-{TAG}"
ADDRESS = "10.254.99.2"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "not root: iptables needs root"
    for tool in ("iptables", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iptables)"
    return None


def iptables(*args: str) -> list[str]:
    result = subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, timeout=20)
    return result.stdout.splitlines() if result.returncode == 0 else []


def tenant_state() -> tuple[list[str], list[str], list[str]]:
    """The tenant's chain, and every rule of the filter and nat tables naming it."""
    return (iptables("-S", CHAIN), [r for r in iptables("-S") if INTERFACE in r],
            [r for r in iptables("-t", "nat", "-S") if INTERFACE in r])


def rules(policy: Any) -> firewall.TenantRules:
    return firewall.TenantRules(CHAIN, firewall.policy_rules(policy, INTERFACE, "ACCEPT"),
                                _hooks(INTERFACE, CHAIN, ADDRESS))


@pytest.fixture
def restores(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every iptables-restore input while the test runs (each still really applied)."""
    reason = _missing()
    if reason:
        pytest.skip(f"FIREWALL NOT TESTED: {reason}")
    seen: list[str] = []
    real_run = subprocess.run

    def run(argv: Any, *args: Any, **kwargs: Any) -> Any:
        if argv[0] == "iptables-restore":
            seen.append(kwargs["input"])
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(firewall.subprocess, "run", run)
    try:
        yield seen
    finally:
        monkeypatch.undo()
        firewall.remove(CHAIN, _hooks(INTERFACE, CHAIN, ADDRESS))
        assert tenant_state() == ([], [], []), "the test left no rule behind"


def test_a_tenants_rules_are_applied_in_one_restore(restores: list[str]) -> None:
    firewall.apply(rules("allow"))
    assert len(restores) == 1
    chain, filter_rules, nat_rules = tenant_state()
    assert chain == [f"-N {CHAIN}", f"-A {CHAIN} -o {INTERFACE} -j ACCEPT",
                     f"-A {CHAIN} -o hyac+ -j DROP", f"-A {CHAIN} -o docker+ -j DROP",
                     f"-A {CHAIN} -o br-+ -j DROP", f"-A {CHAIN} -d 169.254.0.0/16 -j DROP",
                     f"-A {CHAIN} -j ACCEPT"]
    # Each hook at the top of its chain, the last inserted first: the jump is judged
    # before the DROP of what enters the namespace.
    forward = [r for r in iptables("-S", "FORWARD") if INTERFACE in r]
    assert forward == [f"-A FORWARD -i {INTERFACE} -j {CHAIN}",
                       f"-A FORWARD -o {INTERFACE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                       f"-A FORWARD -o {INTERFACE} -j DROP"]
    assert f"-A INPUT -i {INTERFACE} -j DROP" in filter_rules
    assert nat_rules == [f"-A POSTROUTING -s {ADDRESS}/32 ! -o {INTERFACE} -j MASQUERADE"]

    # A change of policy: one restore again, the hooks kept once, the chain replaced.
    firewall.apply(rules(["192.0.2.0/24"]))
    assert len(restores) == 2
    assert f":{CHAIN} - [0:0]" in restores[1] and " -I " not in restores[1]
    chain, again, _ = tenant_state()
    assert chain[-2:] == [f"-A {CHAIN} -d 192.0.2.0/24 -j ACCEPT", f"-A {CHAIN} -j DROP"]
    assert sorted(again) == sorted(filter_rules)


def test_a_failure_midway_leaves_the_previous_rules(restores: list[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    firewall.apply(rules("allow"))
    before = tenant_state()
    assert before[0], "the tenant has rules to lose"

    # A rule iptables refuses, after rules it would take: none of them is applied.
    broken = rules(firewall.CLOSED)
    body = [*broken.body[:1], ("-j", "NO-SUCH-CHAIN"), *broken.body[1:]]
    with pytest.raises(SandboxUnavailable, match="iptables-restore failed"):
        firewall.apply(firewall.TenantRules(CHAIN, body, broken.hooks))
    assert len(restores) == 2, "the change was tried, as one restore"
    assert tenant_state() == before

    # An allowlist host that does not resolve fails before any rule changes.
    def unresolvable(host: str, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(firewall.socket, "getaddrinfo", unresolvable)
    with pytest.raises(SandboxUnavailable, match="does not resolve"):
        firewall.apply(rules(["192.0.2.0/24", "gone.example"]))
    assert len(restores) == 2 and tenant_state() == before


def test_removal_is_one_restore_and_takes_every_copy_away(restores: list[str]) -> None:
    firewall.apply(rules("allow"))
    firewall.remove(CHAIN, _hooks(INTERFACE, CHAIN, ADDRESS))
    assert len(restores) == 2 and tenant_state() == ([], [], [])
    firewall.remove(CHAIN, _hooks(INTERFACE, CHAIN, ADDRESS))  # nothing left: no change
    assert len(restores) == 2

    firewall.apply(rules("allow"))
    # a copy of the jump left by a crash holds the chain: removal still takes it all
    iptables("-I", "FORWARD", "1", "-i", INTERFACE, "-j", CHAIN)
    assert sum(f"-j {CHAIN}" in r for r in iptables("-S", "FORWARD")) == 2
    firewall.remove(CHAIN, _hooks(INTERFACE, CHAIN, ADDRESS))
    assert tenant_state() == ([], [], [])
