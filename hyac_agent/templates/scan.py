"""A published template is scanned for known vulnerabilities as a deploy is
(``hyac_agent.vulns``), and the result is stored with the version.

What the result says is never more than what was checked: a template that pins nothing
is ``no_dependencies``; a package no advisory source could answer for is ``unknown``;
``clean`` only when every package was looked up and nothing was found.
"""

from __future__ import annotations

from typing import Any

NO_DEPENDENCIES = "no_dependencies"


def scan_template(files: dict[str, bytes], runtime: str, store: Any) -> dict[str, Any]:
    """The scan result stored with a template version (blocking)."""
    from hyac_agent.vulns import scan_files

    try:
        result = scan_files(store, files, runtime)
    except ValueError as exc:  # the scanner is misconfigured (HYAC_VULNDB_SOURCES)
        return {"status": "unknown", "reason": f"the scanner could not run: {exc}"}
    if result is None:
        return {"status": NO_DEPENDENCIES, "reason": "the template pins no packages"}
    return result.model_dump(mode="json")
