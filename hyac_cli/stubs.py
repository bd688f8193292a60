"""``hyac stubs``: the stubs of ``hyac_common.stubs``, tailored to a project's names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyac_common.errors import HyacError
from hyac_common.stubs import (
    DEFAULT_SHIM_NAMES,
    FUNCTION_NAME_METHODS,
    MODULE_NAME,
    NAMED_MAPPINGS,
    STUBS_DIR,
    ProjectFacts,
    Stubs,
    build_stubs,
    context_class_of,
    context_module_path,
    render_builtins,
    shim_names,
    shim_prelude,
)

if TYPE_CHECKING:
    from hyac_cli.client import AgentClient
    from hyac_cli.manifest import Project

__all__ = [
    "DEFAULT_SHIM_NAMES", "FUNCTION_NAME_METHODS", "MODULE_NAME", "NAMED_MAPPINGS", "STUBS_DIR",
    "ProjectFacts", "Stubs", "build_stubs", "context_class_of", "context_module_path",
    "project_facts", "render_builtins", "shim_names", "shim_prelude",
]


def project_facts(project: Project, agent: AgentClient | None = None) -> ProjectFacts:
    """The names ``project`` declares, plus what ``agent`` (if given) reports for its tenant.

    Env names come from each function's ``env`` table and, for functions the project
    holds, from the config of the version the agent serves; function names from the
    project and from ``GET /v1/functions``.
    """
    functions = set(project.functions)
    env = {key for spec in project.functions.values() for key in spec.config.get("env", {})}
    sources = ["project"]
    if agent is not None:
        sources.append("agent")
        deployed = agent.get("/v1/functions") or []
        functions.update(str(f["name"]) for f in deployed if f.get("name"))
        for summary in deployed:
            name = summary.get("name")
            if name not in project.functions:
                continue
            for version in agent.get(f"/v1/functions/{name}/versions") or []:
                if version.get("active"):
                    env.update((version.get("config") or {}).get("env") or {})
    secrets: list[str] = []
    if agent is not None:
        try:
            secrets = [str(n) for n in agent.get("/v1/secrets") or []]
        except HyacError:  # a viewer may not list secrets; an older agent has none
            secrets = []
    return ProjectFacts(
        project.tenant, tuple(sorted(functions)), tuple(sorted(env)), tuple(sorted(secrets)),
        tuple(sources),
    )
