"""``hyac deploy``: upload the project's functions to the agent."""

from collections.abc import Callable
from typing import Annotated, Any

import typer

from hyac_cli import options


def deploy(
    names: Annotated[
        list[str] | None,
        typer.Argument(show_default=False, help="Functions to deploy (default: all of them)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Take over functions of the same name that another "
                                     "project deployed, or that run another language."),
    ] = False,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Deploy the functions of the project in the current directory.

    Identical content makes no new version: such functions are reported 'unchanged'.
    A function another project deployed is refused unless --force (or take_over = true
    in [project]).
    """
    from hyac_cli.manifest import load_project, require_project_root
    from hyac_cli.terminal import Terminal

    term = Terminal()
    project = load_project(require_project_root())
    for warning in project.warnings:
        term.warn(warning)
    chosen = project.select(names)
    tenant_name = options.tenant_of(tenant) if tenant else project.tenant
    width = max(len(spec.name) for spec in chosen)
    results = deploy_functions(
        project, chosen, tenant_name,
        on_result=None if as_json else lambda result: report(term, result, width),
        term=term, force=force,
    )
    from hyac_cli import client
    from hyac_cli.commands.scan import show_deploy_findings

    if any(result.get("dependencies") for result in results):
        with client.connect(tenant=tenant_name) as agent:
            show_deploy_findings(term, agent, results, as_json)
    if as_json:
        term.print_json(results)


def deploy_functions(
    project: Any,
    chosen: list[Any],
    tenant: str,
    *,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    term: Any = None,
    agent: Any = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Check, pack and upload ``chosen`` functions of ``project``; the DeployResults.

    Every file must compile before anything is uploaded. ``agent`` reuses an open
    client (``hyac dev`` keeps one); otherwise one is opened for the call.
    """
    from contextlib import nullcontext

    from hyac_cli import client
    from hyac_cli.manifest import check_sources
    from hyac_common.errors import HyacError

    check_sources(project, chosen)
    take_over = force or project.take_over
    requests = {
        spec.name: build_request(project.root, spec, project=project.name, force=take_over)
        for spec in chosen
    }
    results: list[dict[str, Any]] = []
    opened = client.connect(tenant=tenant, timeout=900.0) if agent is None else nullcontext(agent)
    with opened as connection:
        status_cm = term.status("deploying…") if term is not None else nullcontext(None)
        with status_cm as status:
            for index, (name, payload) in enumerate(requests.items(), start=1):
                if status is not None:
                    # The agent resolves and installs dependencies during the PUT; that
                    # can take a while the first time, so say so while it runs.
                    doing = ": installing dependencies" if _has_dependencies(payload) else ""
                    status.update(f"deploying {name} ({index}/{len(requests)}){doing}…")
                try:
                    result = connection.put(f"/v1/functions/{name}", json=payload)
                except HyacError as exc:
                    exc.message = f"deploying {name!r} failed: {exc.message}"
                    raise
                results.append(result)
                if on_result is not None:
                    on_result(result)
    return results


def _has_dependencies(payload: dict[str, Any]) -> bool:
    if (payload.get("config") or {}).get("requirements"):
        return True
    folder = str(payload.get("entry", "")).rpartition("/")[0]
    files = payload.get("files_b64") or {}
    return f"{folder}/requirements.txt" in files or f"{folder}/package.json" in files


def build_request(root: Any, spec: Any, *, project: str | None = None, force: bool = False
                  ) -> dict[str, Any]:
    """The DeployRequest (as JSON) for one function of the project at ``root``; the
    agent records ``project`` as the function's owner."""
    import base64

    from hyac_common.wire import DeployRequest, FunctionConfig, SampleRequest

    files = {
        rel: base64.b64encode((root / rel).read_bytes()).decode("ascii") for rel in spec.files
    }
    # hyac.toml's sample is a body, sent as a POST (as `hyac dev` replays it)
    sample = SampleRequest(body=spec.sample) if spec.sample is not None else None
    request = DeployRequest(entry=spec.entry, files_b64=files, config=FunctionConfig(**spec.config),
                            project=project, force=force, sample=sample)
    return request.model_dump(mode="json")


def report(term: Any, result: dict[str, Any], width: int) -> None:
    created = result.get("created", True)
    version = result.get("version")
    previous = result.get("previous_version")
    if created:
        outcome: tuple[str, str | None] = ("deployed", "green")
    elif previous is not None and previous != version:
        # Same content as an older version (e.g. after a rollback): that one is active again.
        outcome = (f"reactivated (was v{previous})", "green")
    else:
        outcome = ("unchanged", "dim")
    line: list[tuple[str, str | None]] = [
        (str(result.get("name", "?")).ljust(width), "bold"),
        (f"  v{version}  ", None),
        outcome,
    ]
    deps = result.get("dependencies")
    if deps:
        how = "installed" if deps.get("installed") else "cached"
        line.append((f"  ({deps.get('packages', 0)} packages, {how})", "dim"))
    active = result.get("active_version")
    if active is not None and active != version:
        line.append((f"  (v{active} stays active)", "yellow"))
    term.styled(line)
