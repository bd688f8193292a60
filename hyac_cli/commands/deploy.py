"""``hyac deploy``: upload the project's functions to the agent."""

from typing import Annotated, Any

import typer

from hyac_cli import options


def deploy(
    names: Annotated[
        list[str] | None,
        typer.Argument(show_default=False, help="Functions to deploy (default: all of them)."),
    ] = None,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Deploy the functions of the project in the current directory.

    Identical content makes no new version: such functions are reported 'unchanged'.
    """
    from hyac_cli import client
    from hyac_cli.manifest import check_sources, load_project, require_project_root
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import HyacError

    term = Terminal()
    project = load_project(require_project_root())
    for warning in project.warnings:
        term.warn(warning)
    chosen = project.select(names)
    check_sources(project, chosen)  # every file must compile before anything is uploaded
    requests = {spec.name: build_request(project.root, spec) for spec in chosen}
    tenant_name = options.tenant_of(tenant) if tenant else project.tenant

    results: list[dict[str, Any]] = []
    width = max(len(name) for name in requests)
    with client.connect(tenant=tenant_name, timeout=120.0) as agent:
        with term.status("deploying…") as status:
            for index, (name, payload) in enumerate(requests.items(), start=1):
                status.update(f"deploying {name} ({index}/{len(requests)})…")
                try:
                    result = agent.put(f"/v1/functions/{name}", json=payload)
                except HyacError as exc:
                    exc.message = f"deploying {name!r} failed: {exc.message}"
                    raise
                results.append(result)
                if not as_json:
                    _report(term, result, width)
    if as_json:
        term.print_json(results)


def build_request(root: Any, spec: Any) -> dict[str, Any]:
    """The DeployRequest (as JSON) for one function of the project at ``root``."""
    import base64

    from hyac_common.wire import DeployRequest, FunctionConfig

    files = {
        rel: base64.b64encode((root / rel).read_bytes()).decode("ascii") for rel in spec.files
    }
    request = DeployRequest(entry=spec.entry, files_b64=files, config=FunctionConfig(**spec.config))
    return request.model_dump(mode="json")


def _report(term: Any, result: dict[str, Any], width: int) -> None:
    created = result.get("created", True)
    version = result.get("version")
    line: list[tuple[str, str | None]] = [
        (str(result.get("name", "?")).ljust(width), "bold"),
        (f"  v{version}  ", None),
        ("deployed" if created else "unchanged", "green" if created else "dim"),
    ]
    active = result.get("active_version")
    if active is not None and active != version:
        line.append((f"  (v{active} stays active)", "yellow"))
    term.styled(line)
