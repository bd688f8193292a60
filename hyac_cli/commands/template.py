"""``hyac template``: the agent's template registry — browse, show, publish, review, rate,
and the remote sources it reads. ``hyac init DIR --template NAME[@VERSION]`` installs one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hyac_cli import options

if TYPE_CHECKING:
    from hyac_cli.terminal import Terminal

app = typer.Typer(help="Templates: projects to start from (ls, search, show, publish, rate).",
                  no_args_is_help=True)
source_app = typer.Typer(help="Remote template sources: other agents' registries, read-only.",
                         no_args_is_help=True)
app.add_typer(source_app, name="source")

Reference = Annotated[str, typer.Argument(help="NAME or NAME@VERSION.", show_default=False)]
_PLACEHOLDER = re.compile(r"\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def split_reference(reference: str) -> tuple[str, str | None]:
    """``name@1.2.0`` -> (name, "1.2.0"); ``name`` -> (name, None)."""
    from hyac_common.errors import InvalidInput

    name, _, version = reference.partition("@")
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,47}", name) or (version and not re.fullmatch(
            r"[0-9A-Za-z.+-]{1,64}", version)):
        raise InvalidInput(f"{reference[:80]!r} is not a template: NAME or NAME@VERSION "
                           "(lower-case name, e.g. kv-counter@1.0.0)")
    return name, version or None


# browsing ------------------------------------------------------------------------------


def _listing(query: str, as_json: bool) -> None:
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with term.status("Reading the template registry…"), client.connect() as agent:
        answer = agent.get("/v1/templates", params={"q": query} if query else None)
    if as_json:
        term.print_json(answer)
        return
    rows = [(item["name"], item.get("version", ""), item.get("runtime", ""),
             _rating(item.get("rating")), item.get("installs", ""),
             "" if item.get("source") == "local" else item.get("source", ""),
             "" if item.get("status") == "approved" else item.get("status", ""),
             item.get("title", "")) for item in answer.get("templates", [])]
    term.table(("name", "version", "runtime", "rating", "installs", "source", "status", "title"),
               rows, empty="No templates match." if query else "No templates.")
    for gone in answer.get("unreachable", []):
        term.warn(f"template source {gone['source']} was not read: {gone['reason']}")


def _rating(rating: Any) -> str:
    if not isinstance(rating, dict) or not rating.get("count"):
        return "-"
    return f"{rating['average']:.1f} ({rating['count']})"


@app.command("ls")
def ls(as_json: options.Json = False) -> None:
    """List the templates you can use (the newest version of each)."""
    _listing("", as_json)


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Words every result contains (name, title, "
                                         "description, tags, runtime).", show_default=False)],
    as_json: options.Json = False,
) -> None:
    """Find templates by words."""
    _listing(query, as_json)


@app.command("show")
def show(reference: Reference, as_json: options.Json = False) -> None:
    """A template's details, what it needs, its scan result and its README."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    name, version = split_reference(reference)
    with client.connect() as agent:
        # fresh: scanned against the advisories the agent has now, not at publish
        item = agent.get(f"/v1/templates/{name}", params={"fresh": "true", **({"version": version}
                                                                            if version else {})})
    term = Terminal()
    if as_json:
        term.print_json(item)
        return
    term.say(f"{item['name']}@{item['version']} — {item['title']}", style="bold")
    term.say(item["description"])
    for label, value in (
        ("runtime", item["runtime"]), ("author", item["author"]), ("licence", item["licence"]),
        ("tags", ", ".join(item["tags"]) or "-"), ("versions", ", ".join(item.get("versions", []))),
        ("status", item["status"]), ("installs", item["installs"] if item["installs"] is not None
                                     else f"- (from {item['source']})"),
        ("rating", _rating(item["rating"])), ("sha256", item["sha256"]),
        ("scan", _scan_line(item.get("scan") or {})),
    ):
        term.say(f"  {label:<9} {value}")
    _say_requirements(term, item)
    term.say("")
    term.write(item.get("readme", "").rstrip() + "\n")
    term.say(f"\nStart a project from it: hyac init DIR --template {item['name']}", style="dim")


def _scan_line(scan: dict[str, Any]) -> str:
    packages = scan.get("packages") or []
    detail = scan.get("reason") or ", ".join(
        f"{package['name']} {package.get('version') or '(unpinned)'}: {package['status']}"
        for package in packages[:8])
    return f"{scan.get('status', 'unknown')}" + (f" — {detail}" if detail else "")


def _say_requirements(term: Terminal, manifest: dict[str, Any]) -> None:
    for kind, what in (("secrets", "secret"), ("env", "env")):
        for key, info in (manifest.get(kind) or {}).items():
            default = f" (default {info['default']!r})" if info.get("default") is not None else ""
            term.say(f"  {what:<9} {key}: {info['description']}{default}")


# publishing and review -----------------------------------------------------------------


@app.command("publish")
def publish(
    directory: Annotated[Path, typer.Argument(help="The template's project folder (with "
                                              "template.toml).")] = Path("."),
    as_json: options.Json = False,
) -> None:
    """Publish a project as a template: template.toml, hyac.toml, README.md, the sample
    request, functions/ and tests/. The platform owner approves it for everyone."""
    from hyac_agent.templates.files import check_template, collect_dir, encode_files
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidTemplate

    root = directory.expanduser()
    if not (root / "template.toml").is_file():
        raise InvalidTemplate(f"no template.toml in {root}: a template needs a manifest "
                              "(see `hyac template show kv-counter` for one)")
    files = collect_dir(root)
    manifest = check_template(files)  # the agent checks again; this fails before the upload
    term = Terminal()
    with term.status(f"Publishing {manifest.name}@{manifest.version}…"), client.connect() as agent:
        item = agent.post("/v1/templates", json={"files_b64": encode_files(files)})
    if as_json:
        term.print_json(item)
        return
    term.say(f"{item['name']}@{item['version']}  published ({len(files)} files, "
             f"sha256 {item['sha256'][:12]})")
    if item["status"] != "approved":
        term.note("Pending: other tenants see it once the platform owner approves it "
                  f"(hyac template approve {item['name']}@{item['version']}).")


def _review(reference: str, verb: str, as_json: bool) -> None:
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidInput

    name, version = split_reference(reference)
    if version is None:
        raise InvalidInput(f"name the version to {verb}: {name}@VERSION")
    with client.connect() as agent:
        item = agent.post(f"/v1/templates/{name}/versions/{version}/{verb}")
    term = Terminal()
    if as_json:
        term.print_json(item)
    else:
        term.say(f"{name}@{version}  {item['status']}")


@app.command("approve")
def approve(reference: Reference, as_json: options.Json = False) -> None:
    """Make a published version visible to every tenant (platform owner or moderator)."""
    _review(reference, "approve", as_json)


@app.command("reject")
def reject(reference: Reference, as_json: options.Json = False) -> None:
    """Hide a published version from every tenant (platform owner or moderator)."""
    _review(reference, "reject", as_json)


@app.command("rate")
def rate(
    name: Annotated[str, typer.Argument(help="The template.", show_default=False)],
    stars: Annotated[int, typer.Argument(min=1, max=5, help="1 to 5.", show_default=False)],
    as_json: options.Json = False,
) -> None:
    """Rate a template (one rating per user; rating again replaces yours)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    template, _ = split_reference(name)
    with client.connect() as agent:
        rating = agent.put(f"/v1/templates/{template}/rating", json={"stars": stars})
    term = Terminal()
    if as_json:
        term.print_json(rating)
    else:
        term.say(f"{template}  rated {stars}; now {_rating(rating)}")


# remote sources ------------------------------------------------------------------------


@source_app.command("add")
def source_add(
    url: Annotated[str, typer.Argument(help="Another agent's URL (it must share its templates: "
                                       "HYAC_TEMPLATES_PUBLIC=1).", show_default=False)],
    as_json: options.Json = False,
) -> None:
    """Read another agent's approved templates too (platform owner only)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        sources = agent.post("/v1/templates/sources", json={"url": url})
    term = Terminal()
    term.print_json(sources) if as_json else term.say(f"{url}  added")


@source_app.command("ls")
def source_ls(as_json: options.Json = False) -> None:
    """List the remote template sources."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        sources = agent.get("/v1/templates/sources")
    term = Terminal()
    if as_json:
        term.print_json(sources)
    else:
        term.table(("url",), [(url,) for url in sources], empty="No template sources.")


@source_app.command("rm")
def source_rm(url: Annotated[str, typer.Argument(help="The source's URL.", show_default=False)]) -> None:
    """Stop reading a remote template source (platform owner only)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        agent.delete("/v1/templates/sources", params={"url": url})
    Terminal().say(f"{url}  removed")


# installing (hyac init --template) -----------------------------------------------------


@dataclass
class FetchedTemplate:
    """A template fetched for ``hyac init``, ready to be written into a project."""

    name: str
    version: str
    runtime: str
    files: dict[str, bytes]
    env: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)
    sample: str = "sample.json"

    def write(self, root: Path, project: str, tenant: str) -> list[Path]:
        """Write the files (hyac.toml filled in for this project); nothing outside ``root``."""
        written = []
        for path, content in sorted(self.files.items()):
            target = root.joinpath(*_safe_parts(path))
            if path == "hyac.toml":
                content = self.project_manifest(content.decode("utf-8"), project, tenant).encode()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written.append(target)
        return written

    def project_manifest(self, text: str, project: str, tenant: str) -> str:
        import json

        values = {"name": json.dumps(project), "runtime": json.dumps(self.runtime),
                  "tenant": json.dumps(tenant)}
        lines, table = [], ""
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("["):
                table = stripped
            key = stripped.split("=", 1)[0].strip()
            if table == "[project]" and "=" in stripped and key in values:
                line = f"{key} = {values.pop(key)}"
            lines.append(line)

        def fill(match: re.Match[str]) -> str:
            default = (self.env.get(match.group(1)) or {}).get("default")
            return "" if default is None else json.dumps(default)[1:-1]

        return self.header() + _PLACEHOLDER.sub(fill, "\n".join(lines)) + "\n"

    def header(self) -> str:
        lines = [f"# From template {self.name}@{self.version} (hyac template show {self.name})."]
        if self.secrets:
            lines.append("# Secrets its functions read; set each before deploying:")
            lines += [f"#   hyac secret set {key}   # {info['description']}"
                      for key, info in self.secrets.items()]
        if self.env:
            lines.append("# Environment it reads (set in the [functions.*] env tables below):")
            lines += [f"#   {key}: {info['description']}" for key, info in self.env.items()]
        return "\n".join(lines) + "\n\n"

    def report(self, term: Terminal) -> None:
        for key in self.secrets:
            term.say(f"  hyac secret set {key}")
        term.say("  hyac deploy")
        term.say(f"  (the sample request is in {self.sample}; the README says more)")


def _safe_parts(path: str) -> tuple[str, ...]:
    """A path from the agent, refused unless it stays inside the project."""
    from hyac_common.errors import InvalidTemplate

    pure = PurePosixPath(path)
    if pure.is_absolute() or "\\" in path or any(part in ("", ".", "..") for part in path.split("/")):
        raise InvalidTemplate(f"the template holds a path outside the project: {path[:100]!r}")
    return pure.parts


def _check_runtime(name: str, wanted: str, runtime: str) -> str:
    """The project's runtime: ``runtime``, if the template (written for ``wanted``) runs on it."""
    from hyac_common.errors import InvalidInput

    fits = runtime.startswith("python") if wanted == "python" else runtime == wanted
    if not fits:
        raise InvalidInput(f"template {name} is written for "
                           f"{'Python' if wanted == 'python' else wanted}, not {runtime}")
    return runtime


def fetch_template(reference: str, runtime: str | None) -> FetchedTemplate:
    """Fetch NAME[@VERSION] from the agent's registry (counting an install)."""
    import base64

    from hyac_cli import client
    from hyac_cli.manifest import default_runtime
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import AgentUnreachable, InvalidInput, NotFound

    name, version = split_reference(reference)
    try:
        with Terminal().status(f"Fetching template {reference}…"), client.connect() as agent:
            if runtime:  # a mismatch is said before the install is counted
                shown = agent.get(f"/v1/templates/{name}",
                                  params={"version": version} if version else None)
                _check_runtime(name, shown["runtime"], runtime)
            item = agent.post(f"/v1/templates/{name}/install", json={"version": version})
    except AgentUnreachable as exc:
        raise InvalidInput(f"unknown template {reference!r}: 'hello' and 'empty' are built in; "
                           f"others come from the agent's registry, and {exc.message}") from None
    except NotFound as exc:
        raise InvalidInput(f"unknown template {reference!r}: {exc.message}") from None
    chosen = _check_runtime(name, item["runtime"], runtime or (
        default_runtime() if item["runtime"] == "python" else item["runtime"]))
    files = {path: base64.b64decode(data) for path, data in item["files_b64"].items()}
    for path in files:
        _safe_parts(path)
    return FetchedTemplate(name=item["name"], version=item["version"], runtime=chosen, files=files,
                           env=item.get("env") or {}, secrets=item.get("secrets") or {},
                           sample=item.get("sample") or "sample.json")
