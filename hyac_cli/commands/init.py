"""``hyac init``: create a project with a first function and editor stubs."""

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hyac_common.errors import InvalidInput

if TYPE_CHECKING:
    from hyac_cli.stubs import ProjectFacts

_RUNTIME_RE = re.compile(r"^(python3\.\d+|python3\.12-wasm|node\d+|deno|java\d+)$")


def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to create the project (created if missing).")
    ] = Path("."),
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime", "-r", show_default=False,
            help="Runtime of the functions: python3.X (default: this interpreter's), "
            "python3.12-wasm (WebAssembly), node20, deno or java17.",
        ),
    ] = None,
    template: Annotated[
        str, typer.Option("--template", "-T", help="Starting point: 'hello', 'empty', or a "
                          "template of the agent's registry, NAME[@VERSION] (hyac template ls).")
    ] = "hello",
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", show_default=False, envvar="HYAC_TENANT",
                     help="The project's tenant (default: the active profile's, else 'default')."),
    ] = None,
) -> None:
    """Create a project: hyac.toml, a first function and editor stubs."""
    from hyac_cli import templates
    from hyac_cli.manifest import MANIFEST, default_runtime
    from hyac_cli.stubs import STUBS_DIR, build_stubs
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import HyacError

    term = Terminal()
    fetched = None
    if template not in templates.TEMPLATES:  # a template of the agent's registry
        from hyac_cli.commands.template import fetch_template

        root = directory.expanduser()
        if (root / MANIFEST).exists():  # before fetching: that counts an install
            raise InvalidInput(f"{root / MANIFEST} already exists; not overwriting it")
        fetched = fetch_template(template, runtime)
        runtime = fetched.runtime
    runtime = runtime or default_runtime()
    if not _RUNTIME_RE.match(runtime):
        raise InvalidInput(
            f"unknown runtime {runtime!r}: use python3.X (e.g. python3.11), python3.12-wasm, "
            "node20, deno or java17"
        )
    if fetched is None and template not in templates.TEMPLATES:
        raise InvalidInput(
            f"unknown template {template!r}: choose one of {', '.join(templates.TEMPLATES)}"
        )
    root = directory.expanduser()
    if (root / MANIFEST).exists():
        raise InvalidInput(f"{root / MANIFEST} already exists; not overwriting it")
    if root.exists() and not root.is_dir():
        raise InvalidInput(f"{root} exists and is not a directory")
    name = root.resolve().name or "project"
    created: list[Path] = []
    kept: list[Path] = []

    def put(path: Path, text: str | None, *, overwrite: bool = False) -> None:
        if text is None:
            return
        if path.exists() and not overwrite:
            kept.append(path)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created.append(path)

    root.mkdir(parents=True, exist_ok=True)
    from hyac_cli import options
    from hyac_common.names import validate_name

    project_tenant = validate_name(tenant, "tenant") if tenant else options.profile_tenant() or "default"
    if fetched is not None:
        created += fetched.write(root, name, project_tenant)
    else:
        put(root / MANIFEST, templates.manifest(name, runtime, project_tenant))
    from hyac_cli.dts import is_script_runtime
    from hyac_cli.javastubs import is_java_runtime

    if is_java_runtime(runtime):
        _init_java_project(root, template, put, created, term)
        _report(term, created, kept, root, directory, name, template, fetched)
        return
    if is_script_runtime(runtime):
        _init_script_project(root, runtime, template, put, created, term, fetched)
        _report(term, created, kept, root, directory, name, template, fetched)
        return
    (root / "functions").mkdir(exist_ok=True)
    if template == "hello":
        put(root / "functions" / "hello.py", templates.HELLO)
    put(root / ".gitignore", templates.GITIGNORE)
    try:
        # Tailored to what the project holds so far (its functions); `hyac stubs` adds
        # what the agent knows.
        stubs = build_stubs(facts=_local_facts(root, fetched))
    except HyacError as exc:
        term.warn(f"editor stubs not written: {exc.message}")
    else:
        created += stubs.write(root / STUBS_DIR)
    put(root / "pyrightconfig.json", templates.pyright_config(runtime, STUBS_DIR))
    put(root / "mypy.ini", templates.MYPY_INI.format(stubs=STUBS_DIR))
    settings = root / ".vscode" / "settings.json"
    existing = settings.read_text(encoding="utf-8") if settings.exists() else None
    put(settings, templates.vscode_settings(existing, STUBS_DIR), overwrite=True)
    put(root / ".vscode" / "extensions.json", templates.VSCODE_EXTENSIONS)

    _report(term, created, kept, root, directory, name, template, fetched)


def _init_java_project(root: Path, template: str, put, created, term) -> None:  # type: ignore[no-untyped-def]
    """A java17 project: functions/Hello.java, and typings/java/Context.java for javac and
    IDEs (generated from the runtime's own Context class)."""
    from hyac_cli import templates
    from hyac_cli.javastubs import write_java_stub
    from hyac_common.errors import HyacError

    (root / "functions").mkdir(exist_ok=True)
    if template == "hello":
        put(root / "functions" / "Hello.java", templates.HELLO_JAVA)
    put(root / ".gitignore", templates.GITIGNORE)
    put(root / ".vscode" / "settings.json", templates.VSCODE_JAVA_SETTINGS)
    try:
        created += write_java_stub(root)
    except HyacError as exc:
        term.warn(f"editor stubs not written: {exc.message}")


def _init_script_project(root: Path, runtime: str, template: str, put, created, term,  # type: ignore[no-untyped-def]
                         fetched=None) -> None:
    """A node20 or deno project: a hello function in JavaScript/TypeScript, and .d.ts types."""
    from hyac_cli import templates
    from hyac_cli.dts import write_dts

    (root / "functions").mkdir(exist_ok=True)
    if template == "hello":
        if runtime == "deno":
            put(root / "functions" / "hello.ts", templates.HELLO_TS)
        else:
            put(root / "functions" / "hello.js", templates.HELLO_JS)
    put(root / ".gitignore", templates.GITIGNORE)
    created += write_dts(root, _local_facts(root, fetched))


def _report(term, created, kept, root, directory, name, template, fetched=None) -> None:  # type: ignore[no-untyped-def]
    for path in created:
        term.say(f"  created  {_shown(path, root)}")
    for path in kept:
        term.say(f"  kept     {_shown(path, root)} (already there)", style="dim")
    where = "" if root.resolve() == Path.cwd().resolve() else f"cd {directory} && "
    term.say(f"\nProject {name!r} is ready. Next:", style="bold")
    if fetched is not None:  # the template says what it needs
        if where:
            term.say(f"  {where.removesuffix(' && ')}")
        fetched.report(term)
        return
    term.say(f"  {where}hyac agent up && hyac deploy")
    if template == "hello":
        term.say("""  hyac invoke hello --data '{"name": "Ada"}'""")


def _local_facts(root: Path, fetched=None) -> "ProjectFacts | None":  # type: ignore[no-untyped-def]
    from hyac_cli.manifest import load_project
    from hyac_cli.stubs import project_facts
    from hyac_common.errors import HyacError

    try:
        facts = project_facts(load_project(root))
    except HyacError:
        return None  # e.g. a function file with an invalid name: plain stubs then
    if fetched is not None and fetched.secrets:  # the template's secrets, set or not yet
        import dataclasses

        facts = dataclasses.replace(facts, secrets=tuple(sorted({*facts.secrets, *fetched.secrets})))
    return facts


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
