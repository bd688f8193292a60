"""``hyac scan``, ``hyac scan-policy`` and ``hyac sbom``: known vulnerabilities in
functions' dependencies, the tenant's policy about them, and bills of materials."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hyac_cli import options


def scan(
    function: Annotated[Optional[str], typer.Argument(
        show_default=False, help="A deployed function (default: every active version).")] = None,
    local: Annotated[bool, typer.Option(
        "--local", help="Scan the project in the current directory before deploying it: "
                        "pinned requirements and package-lock.json.")] = False,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Scan dependencies for known vulnerabilities.

    Each package is vulnerable, clean, or unknown (no advisory source could answer, or
    the agent's database is too old): unknown is never shown as clean. Exits with 1
    when the tenant's policy would block what was scanned.
    """
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    if local:
        if function is not None:
            from hyac_common.errors import UsageError

            raise UsageError("--local scans the project's functions: name none")
        reports = _scan_local(term, tenant, as_json)
    else:
        with client.connect(tenant=options.tenant_of(tenant), timeout=300.0) as agent:
            with term.status("scanning…") if not as_json else _quiet():
                body = {"function": function}
                reports = agent.post("/v1/scan", json=body) or []
    if as_json:
        term.print_json(reports)
    else:
        for report in reports:
            show(term, report)
        if not reports:
            term.note("No functions.", style=None)
    if any(report.get("blocked") for report in reports):
        raise typer.Exit(1)


def _quiet() -> Any:
    from contextlib import nullcontext

    return nullcontext()


def _scan_local(term: Any, tenant: str | None, as_json: bool) -> list[dict[str, Any]]:
    from hyac_cli import client
    from hyac_cli.manifest import load_project, require_project_root

    project = load_project(require_project_root())
    tenant_name = options.tenant_of(tenant) if tenant else project.tenant
    reports = []
    with client.connect(tenant=tenant_name, timeout=300.0) as agent:
        for spec in project.select(None):
            body = local_files(project.root, spec, str(spec.config.get("runtime", project.runtime)))
            if body is None:
                continue
            with term.status(f"scanning {spec.name}…") if not as_json else _quiet():
                report = agent.post("/v1/scan/files", json=body)
            report["function"] = spec.name
            reports.append(report)
    return reports


def local_files(root: Path, spec: Any, runtime: str) -> dict[str, Any] | None:
    """What the agent needs to scan a function before it is deployed: its requirements
    and the dependency files beside it (or at the project root); None without any."""
    folder = Path(spec.entry).parent
    names = ("requirements.txt",) if runtime.startswith("python") else (
        "package-lock.json", "package.json")
    files = {}
    for name in names:
        for candidate in (folder / name, Path(name)):
            if (root / candidate).is_file():
                files[candidate.as_posix()] = (root / candidate).read_text(errors="replace")
                break
    requirements = list(spec.config.get("requirements") or [])
    if not files and not requirements:
        return None
    return {"runtime": runtime, "files": files, "requirements": requirements}


_STYLE = {"vulnerable": "red", "unknown": "yellow", "clean": "green"}


def show(term: Any, report: dict[str, Any]) -> None:
    """One report: a headline, then each package that is not clean."""
    name = report.get("function") or "packages"
    version = f" v{report['version']}" if report.get("version") else ""
    result = report.get("result")
    if result is None:
        term.styled([(f"{name}{version}", "bold"), ("  no dependencies", "dim")])
        return
    packages = result.get("packages", [])
    counts = {s: sum(1 for p in packages if p["status"] == s) for s in _STYLE}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    line = [(f"{name}{version}", "bold"), (f"  {result['status']}", _STYLE.get(result["status"])),
            (f"  ({summary})", "dim")]
    if report.get("blocked"):
        line.append(("  BLOCKED by the policy", "red"))
    term.styled(line)
    for package in packages:
        for advisory in package.get("advisories", []):
            cves = [a for a in advisory.get("aliases", []) if a.startswith("CVE-")]
            fix = f"fixed in {advisory['fixed']}" if advisory.get("fixed") else "no fix yet"
            term.styled([(f"  {package['name']} {package.get('version') or ''}", None),
                         (f"  {advisory['id']}", "bold"),
                         (f" {' '.join(cves)}" if cves else "", None),
                         (f"  {advisory['severity']}", _severity_style(advisory["severity"])),
                         (f"  {fix}", None),
                         (f"  {advisory.get('summary', '')[:80]}", "dim")])
        if package["status"] == "unknown":
            term.styled([(f"  {package['name']} {package.get('version') or ''}", None),
                         ("  unknown", "yellow"), (f"  {package.get('reason', '')}", "dim")])


def _severity_style(severity: str) -> str | None:
    return {"critical": "red", "high": "red", "moderate": "yellow"}.get(severity)


def show_deploy_findings(term: Any, agent: Any, results: list[dict[str, Any]],
                         as_json: bool) -> None:
    """After a deploy: each version with dependencies and its stored scan (in --json,
    under ``scan`` in each result)."""
    from hyac_cli import client

    for result in results:
        if not result.get("dependencies"):
            continue
        name = client.segment(str(result.get("name", "")), "function")
        report = agent.get(f"/v1/functions/{name}/scan",
                           params={"version": result.get("version")})
        result["scan"] = report
        if not as_json and (report.get("result") or {}).get("status") != "clean":
            show(term, report)


def scan_policy(
    rule: Annotated[Optional[str], typer.Argument(
        show_default=False,
        help="off, warn, block or block:SEVERITY (low, moderate, high, critical); "
             "'default' goes back to the platform's. Omit it to show the policy.")] = None,
    unknown: Annotated[Optional[str], typer.Option(
        help="allow or block: what a blocking policy does with unknown packages.")] = None,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Show or set the tenant's vulnerability policy for deploys (admins set it)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import UsageError

    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        if rule == "default":
            policy = agent.delete("/v1/scan/policy")
        elif rule is not None or unknown is not None:
            current = agent.get("/v1/scan/policy")
            body = {k: current[k] for k in ("mode", "severity", "unknown")}
            if rule is not None:
                mode, _, severity = rule.partition(":")
                if mode not in ("off", "warn", "block"):
                    raise UsageError(f"{rule!r}: expected off, warn, block or block:SEVERITY")
                body.update(mode=mode, **({"severity": severity} if severity else {}))
            if unknown is not None:
                body["unknown"] = unknown
            policy = agent.put("/v1/scan/policy", json=body)
        else:
            policy = agent.get("/v1/scan/policy")
    if as_json:
        term.print_json(policy)
        return
    text = policy["mode"] + (f" at {policy['severity']} or above, unknown packages: "
                             f"{policy['unknown']}" if policy["mode"] == "block" else "")
    term.say(text + ("  (platform default)" if policy.get("inherited") else ""))


def sbom(
    function: Annotated[str, typer.Argument(show_default=False, help="A deployed function.")],
    version: Annotated[Optional[int], typer.Option(
        "--version", "-v", min=1, help="A version number (default: the active one).")] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write to this file instead of stdout.")] = None,
    tenant: options.Tenant = None,
    as_json: options.Json = False,  # the output is JSON already; failures are too with it
) -> None:
    """Print a version's software bill of materials (CycloneDX 1.5 JSON)."""
    import json

    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        params = {"version": version} if version is not None else {}
        document = agent.get(f"/v1/functions/{client.segment(function, 'function')}/sbom",
                             params=params)
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        term.write(text)
        return
    output.write_text(text)
    term.note(f"{output}: {len(document.get('components', []))} components, "
              f"{len(document.get('vulnerabilities', []))} vulnerabilities")
