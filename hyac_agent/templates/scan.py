"""A published template is scanned for known vulnerabilities as a deploy is.

The scanner lives in ``hyac_agent.vulns``. Until it offers a scan of a set of files, a
template's result says so — ``not_scanned`` — and never "clean": no one reading it may
take an unchecked template for a checked one.
"""

from __future__ import annotations

from typing import Any

NOT_SCANNED = "not_scanned"


def scan_template(files: dict[str, bytes], runtime: str) -> dict[str, Any]:
    """The scan result stored with a template version."""
    # CALL POINT for the vulnerability scanner (hyac_agent.vulns): when it exposes a scan
    # of a bundle's files, call it here and return its result instead.
    has_requirements = any(
        name.endswith(("requirements.txt", "package-lock.json", "package.json", "deno.json"))
        for name in files
    ) or b"requirements" in files.get("hyac.toml", b"")
    return {
        "status": NOT_SCANNED,
        "reason": "this agent has no vulnerability scanner yet" if has_requirements
        else "no dependencies to scan",
        "dependencies": has_requirements,
    }
