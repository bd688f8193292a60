"""The project: ``hyac.toml`` plus the functions found under ``functions/``.

Every ``functions/NAME.py`` and ``functions/NAME/main.py`` is a function (files beside a
``main.py`` belong to its bundle). ``hyac.toml`` names the project and may tune each
function in a ``[functions.NAME]`` table. Mistakes are reported as
``hyac.toml:LINE: message`` or ``functions/FILE.py:LINE: message``.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from hyac_common.durations import parse_duration, parse_size
from hyac_common.errors import HyacError, InvalidInput, ManifestError
from hyac_common.names import validate_name

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from hyac_common.wire import InManifest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MANIFEST = "hyac.toml"
FUNCTIONS_DIR = "functions"
TOP_KEYS = ("project", "functions")
PROJECT_KEYS = ("name", "runtime", "tenant", "take_over")
#: [functions.NAME] keys beside FunctionConfig's settings: CLI-only, kept out of the config
CLI_FUNCTION_KEYS = ("sample",)  # a request body `hyac dev` replays
_SKIPPED_DIRS = {"__pycache__", "node_modules"}
#: JavaScript/TypeScript entry files (node and deno runtimes), beside Python's .py
SCRIPT_SUFFIXES = (".js", ".mjs", ".cjs", ".ts")
INDEX_FILES = ("index.js", "index.mjs", "index.cjs", "index.ts")


def default_runtime() -> str:
    """The runtime matching the interpreter the CLI runs on, e.g. ``python3.11``."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class FunctionSpec:
    name: str
    entry: str  # project-relative POSIX path of the file holding main()
    files: list[str]  # project-relative POSIX paths of the whole bundle
    config: dict[str, Any]  # keyword arguments of hyac_common.wire.FunctionConfig
    #: [functions.NAME] sample: a request body `hyac dev` replays and the console offers
    sample: Any = None


@dataclass
class Project:
    root: Path
    name: str
    runtime: str
    tenant: str
    functions: dict[str, FunctionSpec]
    warnings: list[str] = field(default_factory=list)
    #: deploy over functions another project owns, or on another language (as --force)
    take_over: bool = False

    def select(self, names: list[str] | None) -> list[FunctionSpec]:
        """The named functions (all of them if ``names`` is empty), or a clear error."""
        if not names:
            if not self.functions:
                raise InvalidInput(
                    f"no functions in {FUNCTIONS_DIR}/ — add {FUNCTIONS_DIR}/NAME.py "
                    "with a main(context) function"
                )
            return list(self.functions.values())
        chosen: list[FunctionSpec] = []
        for name in dict.fromkeys(names):
            if name not in self.functions:
                raise InvalidInput(
                    f"no function {name!r} in this project (expected {FUNCTIONS_DIR}/{name}.py "
                    f"or {FUNCTIONS_DIR}/{name}/main.py)"
                )
            chosen.append(self.functions[name])
        return chosen


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` that holds a hyac.toml."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / MANIFEST).is_file():
            return directory
    return None


def require_project_root(start: Path | None = None) -> Path:
    root = find_project_root(start)
    if root is None:
        where = (start or Path.cwd()).resolve()
        raise InvalidInput(
            f"no {MANIFEST} in {where} or its parents — run `hyac init` to create a project"
        )
    return root


def project_tenant(start: Path | None = None) -> str | None:
    """The tenant of the project around ``start``, if any.

    A hyac.toml that cannot be read is an error, not "no project": falling back to
    another tenant would list, invoke or delete the wrong functions.
    """
    root = find_project_root(start)
    if root is None:
        return None
    try:
        data = parse_toml(read_manifest(root))
    except ManifestError as exc:
        raise ManifestError(f"{exc.message} (or choose a tenant with --tenant)") from None
    project = data.get("project")
    tenant = project.get("tenant") if isinstance(project, dict) else None
    if tenant is None:
        return None
    if not isinstance(tenant, str):
        raise ManifestError(f"{MANIFEST}: tenant must be a string, not {tenant!r}")
    try:
        return validate_name(tenant, "tenant")
    except InvalidInput as exc:
        raise ManifestError(f"{MANIFEST}: {exc.message}") from None


def load_project(root: Path) -> Project:
    """Read hyac.toml and discover the functions, or raise ManifestError/InvalidInput."""
    text = read_manifest(root)
    data = parse_toml(text)
    lines = TomlLines(text)

    def fail(path: tuple[str, ...], message: str) -> ManifestError:
        line = lines.line_of(path)
        return ManifestError(f"{MANIFEST}:{line}: {message}" if line else f"{MANIFEST}: {message}")

    for key in data:
        if key not in TOP_KEYS:
            raise fail((key,), _unknown(key, None, TOP_KEYS))
    odd = _odd_number(data)
    if odd is not None:
        path, value = odd
        raise fail(path, f"{'.'.join(path)} = {value!r}: numbers must be finite and fit in 64 bits")
    project_table = data.get("project")
    if not isinstance(project_table, dict):
        raise fail(("project",), "missing [project] table with at least name = \"...\"")
    for key in project_table:
        if key not in PROJECT_KEYS:
            raise fail(("project", key), _unknown(key, "[project]", PROJECT_KEYS))
    name = project_table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail(("project", "name") if "name" in project_table else ("project",),
                   "[project] needs a name, e.g. name = \"demo\"")
    runtime = project_table.get("runtime", default_runtime())
    if not isinstance(runtime, str) or not runtime:
        raise fail(("project", "runtime"), "runtime must be a string such as \"python3.11\"")
    tenant = project_table.get("tenant", "default")
    try:
        validate_name(tenant if isinstance(tenant, str) else "", kind="tenant")
    except InvalidInput as exc:
        raise fail(("project", "tenant"), exc.message) from None

    take_over = project_table.get("take_over", False)
    if not isinstance(take_over, bool):
        raise fail(("project", "take_over"), "take_over must be true or false")

    found, warnings = discover_functions(root)
    tables = data.get("functions", {})
    if not isinstance(tables, dict):
        raise fail(("functions",), "functions must be a table of [functions.NAME] tables")
    functions: dict[str, FunctionSpec] = {}
    shared_requirements = _project_requirements(root)
    for fn_name, (entry, files) in found.items():
        functions[fn_name] = FunctionSpec(fn_name, entry, files, {"runtime": runtime})
        if shared_requirements and entry.endswith(".py"):
            functions[fn_name].config["requirements"] = list(shared_requirements)
    for fn_name, table in tables.items():
        where = ("functions", fn_name)
        try:
            validate_name(fn_name)
        except InvalidInput as exc:
            raise fail(where, exc.message) from None
        if not isinstance(table, dict):
            raise fail(where, f"[functions.{fn_name}] must be a table")
        if fn_name not in functions:
            raise fail(
                where,
                f"[functions.{fn_name}] has no source: create {FUNCTIONS_DIR}/{fn_name}.py "
                f"or {FUNCTIONS_DIR}/{fn_name}/main.py",
            )
        known = function_keys()
        for key in table:
            if key not in known:
                raise fail((*where, key), _unknown(key, f"[functions.{fn_name}]", known))
        for key, value in table.items():
            if key == "sample":
                try:
                    check_sample(value)
                except HyacError as exc:
                    raise fail((*where, key), f"sample of function {fn_name!r}: {exc.message}"
                               ) from None
                functions[fn_name].sample = value
                continue
            try:
                functions[fn_name].config[key] = function_setting(key, value)
            except HyacError as exc:
                raise fail((*where, key), f"{key} of function {fn_name!r}: {exc.message}") from None
    return Project(root, name.strip(), runtime, tenant, functions, warnings, take_over)


def _odd_number(value: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], Any] | None:
    """The first infinite, NaN or over-64-bit number in parsed TOML, with its key path.

    TOML allows ``inf`` and ``nan``; JSON and the agent's store do not."""
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, item in items:
        found = _odd_number(item, (*path, str(key)))
        if found is not None:
            return found
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return path, value
    return None


def read_manifest(root: Path) -> str:
    """The text of ``root``/hyac.toml; ManifestError if it is not UTF-8 text."""
    raw = (root / MANIFEST).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(f"{MANIFEST}:{line}: not UTF-8 text ({exc.reason})") from None


def parse_toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc).splitlines()[0] if str(exc) else "invalid TOML"
        line = getattr(exc, "lineno", None)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            line = line or int(match.group(1))
            message = f"{message[: match.start()].rstrip()} (column {match.group(2)})"
        prefix = f"{MANIFEST}:{line}" if line else MANIFEST
        raise ManifestError(f"{prefix}: invalid TOML: {message}") from None


def discover_functions(root: Path) -> tuple[dict[str, tuple[str, list[str]]], list[str]]:
    """``{name: (entry, files)}`` for every function under functions/, plus warnings."""
    base = root / FUNCTIONS_DIR
    found: dict[str, tuple[str, list[str]]] = {}
    warnings: list[str] = []
    if not base.is_dir():
        return found, warnings
    for path in sorted(base.iterdir()):
        if path.name.startswith((".", "_")):
            continue
        rel = path.relative_to(root).as_posix()
        if path.is_file() and path.suffix in (".py", ".java", *SCRIPT_SUFFIXES):
            if path.name.endswith(".d.ts"):
                continue
            # functions/Hello.java is function "hello" (a Java class is named after its file).
            stem = path.stem.lower() if path.suffix == ".java" else path.stem
            name, entry, files = stem, rel, [rel]
        elif path.is_dir() and path.name not in _SKIPPED_DIRS:
            index = next((f for f in ("main.py", *INDEX_FILES, "Main.java")
                          if (path / f).is_file()), None)
            if index is None:
                if any(path.glob("*.py")):
                    warnings.append(f"{rel}/ has no main.py, so it is not a function")
                continue
            name, entry = path.name, f"{rel}/{index}"
            files = _bundle_files(root, path)
        else:
            continue
        try:
            validate_name(name)
        except InvalidInput as exc:
            raise InvalidInput(f"{rel}: {exc.message}") from None
        if name in found:
            first, second = sorted((found[name][0], entry))
            raise InvalidInput(f"function {name!r} is defined twice: {first} and {second}")
        found[name] = (entry, files)
    return found, warnings


def check_sources(project: Project, functions: list[FunctionSpec]) -> None:
    """Compile every Python file of ``functions`` and find each entry point, or raise."""
    for spec in functions:
        runtime = str(spec.config.get("runtime", project.runtime))
        script = spec.entry.endswith(SCRIPT_SUFFIXES)
        java = spec.entry.endswith(".java")
        if java != runtime.startswith("java"):
            raise InvalidInput(
                f"{spec.entry} is Java but function {spec.name!r} runs on {runtime}: set "
                f'runtime = "java17" in [functions.{spec.name}] (or [project]) of {MANIFEST}'
                if java else f"function {spec.name!r} runs on {runtime}, but {spec.entry} is "
                "not a .java file"
            )
        if java:
            continue  # compiled by the agent at deploy (javac's own errors, file and line)
        if script == runtime.startswith("python"):
            kind = "JavaScript/TypeScript" if script else "Python"
            hint = 'runtime = "node20" or "deno"' if script else 'runtime = "python3.12"'
            raise InvalidInput(
                f"{spec.entry} is {kind} but function {spec.name!r} runs on {runtime}: set "
                f"{hint} in [functions.{spec.name}] (or [project]) of {MANIFEST}"
            )
        if spec.entry.endswith(".ts") and runtime.startswith("node"):
            raise InvalidInput(f"{spec.entry}: TypeScript runs on the deno runtime, not {runtime}")
        if not runtime.startswith("python"):
            continue
        for rel in spec.files:
            if not rel.endswith(".py"):
                continue
            source = (project.root / rel).read_bytes()
            try:
                # A full compile, not just a parse: it also catches `return` outside a
                # function, `await` outside async code and the like.
                compile(source, rel, "exec", dont_inherit=True)
            except SyntaxError as exc:
                where = f"{rel}:{exc.lineno}" if exc.lineno else rel
                raise InvalidInput(f"{where}: {type(exc).__name__}: {exc.msg}") from None
            except ValueError as exc:  # e.g. null bytes
                raise InvalidInput(f"{rel}: {exc}") from None
            if rel == spec.entry:
                tree = ast.parse(source, rel)
                handler = spec.config.get("handler", "main")
                if handler not in _top_level_names(tree):
                    raise InvalidInput(
                        f"{rel}: no top-level {handler!r} — define "
                        f"`def {handler}(context):` (the function's entry point)"
                    )


class TomlLines:
    """Finds the line of a key in raw TOML text, which tomllib does not report."""

    _HEADER = re.compile(r"^\s*\[\[?\s*(.+?)\s*\]\]?\s*(?:#.*)?$")
    _ASSIGN = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
                         r"(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")

    def __init__(self, text: str) -> None:
        self._entries: list[tuple[int, tuple[str, ...]]] = []
        table: tuple[str, ...] = ()
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = self._HEADER.match(line)
            if header and not line.lstrip().startswith("#"):
                table = _split_key(header.group(1))
                self._entries.append((number, table))
                continue
            assign = self._ASSIGN.match(line)
            if assign:
                self._entries.append((number, table + _split_key(assign.group(1))))
                for quote in ('"""', "'''"):
                    if line.count(quote) % 2 == 1:
                        in_multiline = quote

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """First line defining ``path`` or, failing that, the closest enclosing key."""
        best, best_score = None, 0
        for number, key in self._entries:
            common = 0
            for a, b in zip(key, path, strict=False):
                if a != b:
                    break
                common += 1
            if common < min(len(key), len(path)):
                continue  # a sibling, not an ancestor or descendant
            if common > best_score:
                best, best_score = number, common
        return best


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", text)
    return tuple(next(p for p in groups if p) if any(groups) else "" for groups in parts)


def _unknown(key: str, table: str | None, known: tuple[str, ...]) -> str:
    message = f"unknown key {key!r}" + (f" in {table}" if table else "")
    close = difflib.get_close_matches(key, known, n=1)
    return message + (f" (did you mean {close[0]!r}?)" if close else "")


def function_keys() -> tuple[str, ...]:
    """The keys a [functions.NAME] table may hold: FunctionConfig's settable fields and
    the CLI's own."""
    return (*_settings(), *CLI_FUNCTION_KEYS)


@cache
def _settings() -> dict[str, tuple[FieldInfo, InManifest]]:
    # Imported on first use: pydantic and the wire models are slow to load (test_startup).
    from hyac_common.wire import FunctionConfig, InManifest

    settings = {}
    for key, info in FunctionConfig.model_fields.items():
        form = next((m for m in info.metadata if isinstance(m, InManifest)), InManifest())
        if form.settable:
            settings[key] = (info, form)
    return settings


def check_sample(body: Any) -> None:
    """InvalidInput for a ``sample`` the agent would refuse: not JSON (TOML's dates and
    times are not) or larger than it keeps."""
    from pydantic import ValidationError

    from hyac_common.wire import SampleRequest

    try:
        SampleRequest(body=body)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "value_error":
            raise InvalidInput(str(error["msg"]).removeprefix("Value error, ")) from None
        raise InvalidInput("must be JSON: a table, array, string, number or boolean (not a "
                           "date or time)") from None


def function_setting(key: str, value: Any) -> Any:
    """The FunctionConfig value for a [functions.NAME] setting, or InvalidInput saying why.

    FunctionConfig decides, validating strictly (TOML has real types, so "3" is not a
    number); hyac.toml adds durations and sizes as text, and has no use for empty strings.
    """
    from pydantic import ValidationError

    from hyac_common.wire import FunctionConfig

    info, form = _settings()[key]
    if form.form == "duration":
        value = parse_duration(value, key)
    elif form.form == "size":
        value = parse_size(value, key)
    try:
        checked = getattr(FunctionConfig.model_validate({key: value}, strict=True), key)
    except ValidationError as exc:
        error = exc.errors()[0]
        if len(error["loc"]) > 1 and get_origin(_bare(info.annotation)) is dict:
            name, kind = error["loc"][1], _noun(get_args(_bare(info.annotation))[1])
            raise InvalidInput(f"value of {name!r} must be {kind}, not {error['input']!r}") from None
        raise InvalidInput(f"must be {_expected(info, form)}") from None
    if checked == "" or (isinstance(checked, list) and "" in checked):
        raise InvalidInput(f"must be {_expected(info, form)}")
    if form.accepts is not None and not form.accepts(checked):
        refusal = form.refusal.format(value=checked) if form.refusal else ""
        raise InvalidInput(refusal or f"must be {_expected(info, form)}")
    return checked


def _expected(info: FieldInfo, form: InManifest) -> str:
    """What a setting must be, from its type and bounds: "a whole number >= 0"."""
    if form.expect:
        return form.expect
    bare = _bare(info.annotation)
    what = "a non-empty string" if bare is str else _noun(bare)
    for bound in info.metadata:
        for name, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(bound, name, None) is not None:
                what += f" {sign} {getattr(bound, name)}"
    return f"{what} such as {form.example}" if form.example else what


#: how an error names a type of hyac.toml value: alone, and as the items of a table or list
_NOUNS = {bool: ("true or false", "true/false values"), int: ("a whole number", "whole numbers"),
          float: ("a number", "numbers"), str: ("a string", "strings")}


def _noun(annotation: Any, plural: bool = False) -> str:
    args = get_args(annotation)
    if get_origin(annotation) is dict:  # of strings: the example says the rest
        return "a table" if args[1] is str else f"a table of {_noun(args[1], plural=True)}"
    if get_origin(annotation) is list:
        return f"a list of {_noun(args[0], plural=True)}"
    name = getattr(annotation, "__name__", str(annotation))
    return _NOUNS.get(annotation, (f"a {name}", f"{name} values"))[plural]


def _bare(annotation: Any) -> Any:
    """``X`` for ``Optional[X]`` (TOML has no null), else the annotation itself."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _project_requirements(root: Path) -> list[str]:
    """The project's requirements.txt (shared by its Python functions), as a list."""
    try:
        text = (root / "requirements.txt").read_text(encoding="utf-8")
    except OSError:
        return []
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line]


def _bundle_files(root: Path, directory: Path) -> list[str]:
    files: list[str] = []
    for path in sorted(directory.rglob("*")):
        parts = path.relative_to(directory).parts
        if any(p.startswith(".") or p in _SKIPPED_DIRS for p in parts):
            continue
        if path.is_file() and path.suffix not in (".pyc", ".pyo"):
            files.append(path.relative_to(root).as_posix())
    return files


def _top_level_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            names.update(_top_level_names(node))
            for branch in (node.orelse, *(h.body for h in getattr(node, "handlers", []))):
                names.update(_top_level_names(ast.Module(body=branch, type_ignores=[])))
    return names
