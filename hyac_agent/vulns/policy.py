"""What a tenant's policy makes of a scan: nothing (``off``), a flag (``warn``), or a
refused deploy (``block`` at or above a severity; unknown packages too with
``unknown = "block"``).

The platform default comes from ``HYAC_VULN_POLICY`` (``warn``, ``off``, ``block`` or
``block:high``) and ``HYAC_VULN_UNKNOWN`` (``allow`` or ``block``); a tenant's own
policy (``PUT /v1/scan/policy``) replaces it. An advisory without a rating meets every
threshold: a missing rating is not taken for a harmless one.
"""

from __future__ import annotations

import os

from hyac_agent.vulns.scan import rank
from hyac_common.errors import InvalidInput, VulnerableDependencies
from hyac_common.wire import ScanPolicy, ScanResult

POLICY_ENV = "HYAC_VULN_POLICY"
UNKNOWN_ENV = "HYAC_VULN_UNKNOWN"


def platform_default() -> ScanPolicy:
    text = os.environ.get(POLICY_ENV, "warn").strip().lower()
    mode, _, severity = text.partition(":")
    unknown = os.environ.get(UNKNOWN_ENV, "allow").strip().lower()
    try:
        return ScanPolicy(mode=mode, severity=severity or "low", unknown=unknown, inherited=True)
    except ValueError:
        raise InvalidInput(f"{POLICY_ENV}={text!r} / {UNKNOWN_ENV}={unknown!r}: expected "
                           "off, warn, block or block:SEVERITY, and allow or block") from None


def reasons(policy: ScanPolicy, result: ScanResult | None) -> list[str]:
    """Why ``policy`` blocks ``result`` (empty: it does not)."""
    if result is None or policy.mode != "block":
        return []
    found = []
    threshold = rank(policy.severity)
    for package in result.packages:
        for advisory in package.advisories:
            if advisory.severity == "unrated" or rank(advisory.severity) >= threshold:
                aliases = ", ".join(a for a in advisory.aliases if a.startswith("CVE-"))
                fix = f"fixed in {advisory.fixed}" if advisory.fixed else "no fixed version yet"
                found.append(f"{package.name} {package.version} has {advisory.id}"
                             f"{f' ({aliases})' if aliases else ''}, {advisory.severity}: {fix}")
        if package.status == "unknown" and policy.unknown == "block":
            found.append(f"{package.name} {package.version or ''}: unknown ({package.reason})")
    return found


def enforce(policy: ScanPolicy, result: ScanResult) -> None:
    """VulnerableDependencies when ``policy`` blocks ``result``."""
    why = reasons(policy, result)
    if not why:
        return
    shown = "; ".join(why[:5]) + (f"; and {len(why) - 5} more" if len(why) > 5 else "")
    rule = f"block at {policy.severity} or above" + (
        ", unknown packages too" if policy.unknown == "block" else "")
    advisories = [
        {"id": a.id, "package": p.name, "version": p.version, "severity": a.severity,
         "fixed": a.fixed}
        for p in result.packages for a in p.advisories]
    unknown = [p.name for p in result.packages if p.status == "unknown"]
    raise VulnerableDependencies(
        f"the vulnerability policy ({rule}) refuses this deploy: {shown}",
        advisories=advisories[:100], unknown=unknown[:100])
