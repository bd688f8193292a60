"""``hyac stubs``, ``hyac complete`` and ``hyac lsp``: what editors need."""

from pathlib import Path
from typing import Annotated

import typer

from hyac_cli import options
from hyac_common.errors import InvalidInput


def stubs(
    directory: Annotated[
        Path | None,
        typer.Argument(
            show_default=False,
            help="Project directory (default: the project around the current directory).",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 if the stubs are stale, 0 if fresh."),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Use the project alone; do not ask the agent."),
    ] = False,
    tenant: options.Tenant = None,
) -> None:
    """Regenerate the editor stubs (typings/) from the runtime, the project and the agent.

    The stubs learn the tenant's function names and the functions' env names, so editors
    complete them and type checkers flag typos. Without --offline the agent is asked;
    if none is running, the project alone is used (with a warning).
    """
    from hyac_cli import client
    from hyac_cli.manifest import load_project, require_project_root
    from hyac_cli.stubs import STUBS_DIR, build_stubs, project_facts
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import AgentUnreachable

    term = Terminal()
    root = directory if directory is not None else require_project_root()
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a directory")
    project = load_project(require_project_root(root))
    if tenant:
        project.tenant = options.tenant_of(tenant)
    facts = None
    if not offline:
        try:
            with client.connect(tenant=project.tenant, timeout=10.0) as agent:
                facts = project_facts(project, agent)
        except AgentUnreachable as exc:
            term.warn(f"{exc.message}; using the project alone (--offline)")
    if facts is None:
        facts = project_facts(project)
    if _java_project(project):
        _java_stubs(project, check, term)
        return
    if _script_project(project):
        _script_stubs(project, facts, check, term)
        return
    generated = build_stubs(facts=facts)
    target = project.root / STUBS_DIR
    if check:
        stale = generated.stale(target)
        for path in stale:
            term.say(f"  stale  {_shown(path, project.root)}")
        if stale:
            term.note("The stubs are stale: run `hyac stubs` to refresh them.", style=None)
            raise typer.Exit(1)
        term.say("The stubs are up to date.")
        return
    for path in generated.write(target):
        term.say(f"  wrote  {_shown(path, project.root)}")
    for path in write_checker_configs(project.root, project.runtime):
        term.say(f"  created  {_shown(path, project.root)}")


def _script_project(project) -> bool:  # type: ignore[no-untyped-def]
    """A project whose functions run on node20 or deno (it gets .d.ts, not .pyi)."""
    from hyac_cli.dts import is_script_runtime

    runtimes = {spec.config.get("runtime", project.runtime) for spec in project.functions.values()}
    return is_script_runtime(project.runtime) or any(is_script_runtime(r) for r in runtimes)


def _java_project(project) -> bool:  # type: ignore[no-untyped-def]
    """A project whose functions run on java17 (it gets typings/java/Context.java)."""
    from hyac_cli.javastubs import is_java_runtime

    runtimes = {spec.config.get("runtime", project.runtime) for spec in project.functions.values()}
    return is_java_runtime(project.runtime) or any(is_java_runtime(r) for r in runtimes)


def _java_stubs(project, check: bool, term) -> None:  # type: ignore[no-untyped-def]
    from hyac_cli import javastubs

    target = project.root / javastubs.STUBS_DIR / javastubs.STUB_NAME
    if check:
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != javastubs.build_context_java():
            term.say(f"  stale  {javastubs.STUBS_DIR}/{javastubs.STUB_NAME}")
            term.note("The stubs are stale: run `hyac stubs` to refresh them.", style=None)
            raise typer.Exit(1)
        term.say("The stubs are up to date.")
        return
    for path in javastubs.write_java_stub(project.root):
        term.say(f"  wrote  {_shown(path, project.root)}")


def _script_stubs(project, facts, check: bool, term) -> None:  # type: ignore[no-untyped-def]
    from hyac_cli import dts

    if check:
        if dts.stale(project.root, facts):
            term.say(f"  stale  typings/{dts.DTS_NAME}")
            term.note("The stubs are stale: run `hyac stubs` to refresh them.", style=None)
            raise typer.Exit(1)
        term.say("The stubs are up to date.")
        return
    for path in dts.write_dts(project.root, facts):
        term.say(f"  wrote  {_shown(path, project.root)}")


def write_checker_configs(root: Path, runtime: str) -> list[Path]:
    """pyrightconfig.json and mypy.ini pointing at typings/, where they are missing."""
    from hyac_cli import templates
    from hyac_cli.stubs import STUBS_DIR

    created = []
    for name, text in (
        ("pyrightconfig.json", templates.pyright_config(runtime, STUBS_DIR)),
        ("mypy.ini", templates.MYPY_INI.format(stubs=STUBS_DIR)),
    ):
        path = root / name
        if not path.exists():
            path.write_text(text, encoding="utf-8")
            created.append(path)
    return created


def complete(
    file: Annotated[Path, typer.Argument(help="The Python file.", show_default=False)],
    line: Annotated[int, typer.Argument(help="Line, counted from 1.", show_default=False)],
    column: Annotated[
        int, typer.Argument(help="Column, counted from 0 (like jedi).", show_default=False)
    ],
    as_json: options.Json = False,
) -> None:
    """Print the completions at a position of a function file, one per line.

    LINE is 1-based and COLUMN 0-based, as in jedi: `hyac complete f.py 3 12` completes
    after the 12th character of the third line. --json gives name, complete (the text to
    insert), type and description of each.
    """
    from hyac_cli.completion import Workspace
    from hyac_cli.terminal import Terminal

    try:
        source = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file} is not UTF-8 text") from None
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        raise InvalidInput(f"line {line} is outside {file} (1 to {len(lines)})")
    if not 0 <= column <= len(lines[line - 1]):
        raise InvalidInput(
            f"column {column} is outside line {line} (0 to {len(lines[line - 1])})"
        )
    items = Workspace.around(file).complete(source, file, line, column)
    term = Terminal()
    if as_json:
        term.print_json([item.as_dict() for item in items])
        return
    term.write("".join(f"{item.name}\n" for item in items))


def lsp() -> None:
    """Run the language server for editors, on stdin/stdout.

    Completion, hover, signature help, go-to-definition and diagnostics for function
    files. Editors start it themselves; see docs/editors.md.
    """
    from hyac_cli.lsp import serve

    serve()


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
