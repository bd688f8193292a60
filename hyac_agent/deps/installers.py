"""The installers: resolve requirements into a lock, install a lock into a folder.

No package code ever runs where there is a network. Every step that touches the network
has builds and scripts switched off, and every step that runs package code has no
network (see ``sandbox``):

- Python resolves with ``uv pip compile --no-build`` (pinned, with hashes) and installs
  with ``uv pip install --no-build``: wheels only, so nothing is executed — installing a
  wheel is unpacking it. Without uv, pip does the same with ``--only-binary :all:``. A
  direct-URL archive (owner-allowed) is fetched by the agent itself (``archives``), its
  build requirements installed from wheels, and its wheel built in the sandbox without a
  network; the lock records its URL and sha256.
- Node resolves with ``npm install --package-lock-only --ignore-scripts`` and installs
  with ``npm ci --ignore-scripts``; packages with install scripts then run them with
  ``npm rebuild`` in the sandbox without a network.

A failure carries the resolver's own one-line message (``messages.summarize``); the
whole output goes to the agent's log.

Every fetch trusts the host's certificate authorities (``host_trust``), not only the
public ones each installer bundles: behind a proxy that inspects TLS, its CA in the
system store (or a bundle named by ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE``) is enough.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import ssl
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hyac_agent.deps import archives
from hyac_agent.deps.messages import summarize
from hyac_agent.deps.policy import LockEntry, check_requirement, direct_name, parse_lock
from hyac_agent.deps.sandbox import run_sandboxed
from hyac_agent.runtimes import Runtime
from hyac_common.errors import DependencyConflict, DependencyRefused, HyacError, InstallFailed, InvalidInput

log = logging.getLogger("hyac.deps")

_CONFLICT_MARKERS = ("unsatisfiable", "ResolutionImpossible", "conflict", "ERESOLVE",
                     "Cannot install")
# Calls a PEP 517 backend's build_wheel: what pip and uv do, in twenty stdlib lines.
_BUILD_WHEEL = r"""
import importlib, os, sys
backend_name, out, *backend_path = sys.argv[1:]
sys.path[:0] = [os.path.abspath(p) for p in backend_path]
module, _, attribute = backend_name.partition(":")
backend = importlib.import_module(module)
for part in filter(None, attribute.split(".")):
    backend = getattr(backend, part)
print(backend.build_wheel(out))
"""


def _installer_error(what: str, output: str) -> HyacError:
    log.warning("%s failed; the installer said:\n%s", what, output)
    text = summarize(output) or "the installer gave no reason (see the agent's log)"
    if "has no usable wheels" in text:  # not a conflict: --no-build ruled its sdist out
        return InstallFailed(f"{what} failed: {text} Packages of the index are installed "
                             "from wheels only (building from source is off).")
    if any(marker in text for marker in _CONFLICT_MARKERS):
        return DependencyConflict(f"conflicting requirements: {text}")
    return InstallFailed(f"{what} failed: {text}")


def uv_binary() -> str | None:
    found = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
    return os.path.realpath(found) if found else None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- Trust --------------------------------------------------------------------------------


#: certificate files and folders named in the environment, shown to a sandboxed installer
_CERT_SETTINGS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT",
                  "NODE_EXTRA_CA_CERTS")


@dataclass(frozen=True)
class Trust:
    """What an installer needs to trust the host's CAs: options, environment, and the
    certificate files the sandbox must show it."""

    options: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def host_trust(installer: Literal["uv", "pip", "npm"]) -> Trust:
    """The host's trust store for ``installer``, which would otherwise trust only the CAs
    it bundles (uv's webpki roots, certifi in older pips, Node's own list).

    The bundle is ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE`` where set, else the system's
    (as OpenSSL finds it). What the operator set for an installer itself (``UV_NATIVE_TLS``,
    ``UV_SYSTEM_CERTS``, ``PIP_CERT``, ``NODE_EXTRA_CA_CERTS``) is left as it is.
    """
    named = next((os.environ[n] for n in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
                  if os.path.isfile(os.environ.get(n, ""))), None)
    found = named or ssl.get_default_verify_paths().cafile
    # Resolved: the sandbox shows a file at its real path, not through a symlink.
    bundle = Path(found).resolve() if found else None
    files = sorted({Path(os.environ[n]).resolve() for n in _CERT_SETTINGS
                    if os.path.exists(os.environ.get(n, ""))} | ({bundle} if bundle else set()))
    if installer == "uv":
        env = {}
        if not {"UV_NATIVE_TLS", "UV_SYSTEM_CERTS"} & os.environ.keys():
            # Both names: newer uv calls the setting --system-certs, older --native-tls.
            env = {"UV_NATIVE_TLS": "1", "UV_SYSTEM_CERTS": "1"}
        if named and bundle:
            env["SSL_CERT_FILE"] = str(bundle)  # uv does not read REQUESTS_CA_BUNDLE
        return Trust([], env, files)
    if bundle is None:
        return Trust([], {}, files)
    if installer == "pip":
        return Trust([] if os.environ.get("PIP_CERT") else ["--cert", str(bundle)], {}, files)
    # Node adds these to its own list (Debian's node reads the system store already).
    extra = {} if os.environ.get("NODE_EXTRA_CA_CERTS") else {"NODE_EXTRA_CA_CERTS": str(bundle)}
    return Trust([], extra, files)


# -- Python -------------------------------------------------------------------------------


def _fetch_wheels(runtime: Runtime, requirements: str, target: Path, writable: Path,
                  sandboxed: bool, *, exact: bool, links: Path | None = None) -> None:
    """Install ``requirements`` into ``target`` from wheels only, with the network.

    ``exact``: a lock (no dependencies resolved, hashes required when present)."""
    (writable / ".hyac-fetch.txt").write_text(requirements)
    uv = uv_binary()
    trust = host_trust("uv" if uv else "pip")
    if uv:
        argv = [uv, "pip", "install", "--no-build", "--target", str(target), "--python",
                str(runtime.interpreter), "--quiet", "--cache-dir", "/tmp/uv", "--no-compile",
                *_guest_python(runtime)]
        readable = [Path(uv), runtime.prefix]
    else:
        argv = [str(runtime.interpreter), "-m", "pip", "install", "--only-binary", ":all:",
                "--target", str(target), "--quiet", "--no-compile", "--disable-pip-version-check"]
        readable = [runtime.prefix]
    if exact:
        argv += ["--no-deps", *(["--require-hashes"] if "--hash=" in requirements else [])]
    if links is not None:
        argv += ["--find-links", str(links)]
    result = run_sandboxed([*argv, *trust.options, "-r", str(writable / ".hyac-fetch.txt")],
                           writable=writable, readable=[*readable, *trust.files], network=True,
                           sandboxed=sandboxed, env=trust.env)
    (writable / ".hyac-fetch.txt").unlink(missing_ok=True)
    if result.returncode != 0:
        raise _installer_error("installing the requirements", result.stderr + result.stdout)


def build_wheel(runtime: Runtime, archive: archives.Archive, work: Path, sandboxed: bool) -> Path:
    """The wheel of a direct-URL archive: built with no network, as a non-root uid."""
    wheels = work / "wheels"
    wheels.mkdir(exist_ok=True)
    if archive.is_wheel:
        return Path(shutil.copy(archive.path, wheels))
    build = Path(tempfile.mkdtemp(prefix="build-", dir=work))
    source = archives.unpack(archive, build / "src")
    requires, backend, backend_path = archives.build_system(source)
    if requires:
        _fetch_wheels(runtime, "".join(f"{r}\n" for r in requires), build / "backend", build,
                      sandboxed, exact=False)
    out = build / "out"
    out.mkdir()
    result = run_sandboxed(
        [str(runtime.interpreter), "-c", _BUILD_WHEEL, backend, str(out), *backend_path],
        writable=build, readable=[runtime.prefix], network=False, sandboxed=sandboxed,
        cwd=source, env={"PYTHONPATH": str(build / "backend"), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    built = sorted(out.glob("*.whl"))
    if result.returncode != 0 or len(built) != 1 or built[0].is_symlink():
        log.warning("building %s failed:\n%s", archive.url, result.stderr + result.stdout)
        raise InstallFailed(f"building {archive.path.name} from source failed (its build "
                            "step ran without a network; the agent's log has the output)")
    return Path(shutil.move(str(built[0]), wheels))


def _wheel_pin(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return name, version


def python_lock(runtime: Runtime, requirements: list[str], sandboxed: bool) -> str:
    """Pinned requirements (``name==version`` with hashes under uv) for ``runtime``;
    a direct-URL requirement (already allowed by policy) is locked to its URL and sha256."""
    with tempfile.TemporaryDirectory(prefix="hyac-resolve-") as tmp:
        work = Path(tmp)
        pins: list[str] = []
        direct: dict[str, LockEntry] = {}
        for requirement in requirements:
            url = check_requirement(requirement, allow_urls=True)
            if url is None:
                pins.append(requirement)
                continue
            archives.check_unpackable(url)
            archive = archives.download(url, work / "downloads")
            name, version = _wheel_pin(build_wheel(runtime, archive, work, sandboxed))
            wanted, extras = direct_name(requirement)
            if _canonical(name) != _canonical(wanted):
                raise DependencyRefused(f"{url} holds {name}, not {wanted}")
            pins.append(f"{name}{extras}=={version}")
            direct[_canonical(name)] = LockEntry(name, None, url, (f"--hash=sha256:{archive.sha256}",))
        text = "".join(f"{line}\n" for line in pins)
        links = work / "wheels" if direct else None
        resolved = _compile(runtime, text, work, sandboxed, links)
        entries = parse_lock(resolved, allow_urls=False)
        return "".join(direct.get(_canonical(e.name), e).line() for e in entries)


def _compile(runtime: Runtime, text: str, work: Path, sandboxed: bool, links: Path | None) -> str:
    uv = uv_binary()
    trust = host_trust("uv" if uv else "pip")
    if uv:
        result = run_sandboxed(
            [uv, "pip", "compile", "-", "--python", str(runtime.interpreter), "--no-header",
             "--no-annotate", "--generate-hashes", "--no-build", "--quiet", "--cache-dir",
             "/tmp/uv", *(["--find-links", str(links)] if links else []), *_guest_python(runtime)],
            writable=work, readable=[Path(uv), runtime.prefix, *trust.files], input_text=text,
            network=True, sandboxed=sandboxed, env=trust.env,
        )
        if result.returncode != 0:
            raise _installer_error("resolving the requirements", result.stderr + result.stdout)
        return result.stdout
    Path(work, "requirements.txt").write_text(text)
    result = run_sandboxed(
        [str(runtime.interpreter), "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--only-binary", ":all:", "--quiet", "--report", "-", "-r", f"{work}/requirements.txt",
         *(["--find-links", str(links)] if links else []), *trust.options],
        writable=work, readable=[runtime.prefix, *trust.files], network=True, sandboxed=sandboxed,
    )
    if result.returncode != 0:
        raise _installer_error("resolving the requirements", result.stderr + result.stdout)
    report = json.loads(result.stdout)
    return "".join(sorted(
        f"{item['metadata']['name']}=={item['metadata']['version']}\n"
        for item in report.get("install", [])
    ))


def python_install(runtime: Runtime, lock: str, target: Path, sandboxed: bool,
                   allow_urls: bool) -> None:
    """Install exactly ``lock`` (no resolution, no extra dependencies) into ``target``."""
    entries = parse_lock(lock, allow_urls)
    (target / ".hyac-lock.txt").write_text(lock)
    site = target / "site"
    index = "".join(e.line() for e in entries if e.url is None)
    if index:
        _fetch_wheels(runtime, index, site, target, sandboxed, exact=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=target) as tmp:
        wheels = []
        for entry in (e for e in entries if e.url is not None):
            assert entry.url is not None
            expected = entry.hashes[0].split(":", 1)[1] if entry.hashes else None
            archives.check_unpackable(entry.url)
            archive = archives.download(entry.url, Path(tmp) / "downloads", expected)
            wheels.append(build_wheel(runtime, archive, Path(tmp), sandboxed))
        if wheels:
            # Built wheels are unpacked like any other: from a folder, no network needed.
            _fetch_wheels(runtime, "".join(f"{w}\n" for w in wheels), site, target, sandboxed,
                          exact=True)
    if runtime.pure_python:
        native = native_distributions(site)
        if native:
            raise DependencyRefused(
                f"{', '.join(native)} {'has' if len(native) == 1 else 'have'} native code, and "
                f"{runtime.name} runs pure-Python packages only (wheels tagged none-any)"
            )


def _guest_python(runtime: Runtime) -> list[str]:
    """uv resolves for the runtime's own Python version where the interpreter that runs
    the installer is another one (python3.12-wasm: the guest is 3.12, its host any)."""
    return ["--python-version", runtime.version] if runtime.pure_python and runtime.version else []


def native_distributions(site: Path) -> list[str]:
    """The installed distributions whose wheel is not pure Python (``Tag`` other than
    ``*-none-any``), or that hold a native library."""
    found = []
    for info in sorted(site.glob("*.dist-info")):
        try:
            wheel = (info / "WHEEL").read_text(errors="replace")
        except OSError:
            wheel = ""
        tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines()
                if line.lower().startswith("tag:")]
        pure = bool(tags) and all(tag.endswith("-none-any") for tag in tags)
        try:
            record = (info / "RECORD").read_text(errors="replace")
        except OSError:
            record = ""
        if pure and any(re.search(r"\.(so|pyd|dylib)(\.[0-9.]+)?,", line) for line in record.splitlines()):
            pure = False
        if not pure:
            found.append(info.name[: -len(".dist-info")].rsplit("-", 1)[0])
    return found


# -- Node ---------------------------------------------------------------------------------


def _npm() -> tuple[str, Path]:
    npm = shutil.which("npm")
    if npm is None:
        raise InstallFailed("npm is not installed on this agent (apt-get install npm)")
    real = Path(os.path.realpath(npm))
    # npm is a script of the node install: bind its whole package (e.g. /usr/share/nodejs).
    return npm, real.parent.parent


def package_json(requirements: list[str], existing: bytes | None) -> dict[str, object]:
    """package.json of the environment: the function's own, plus ``requirements``."""
    data: dict[str, object] = {}
    if existing:
        try:
            loaded = json.loads(existing)
        except ValueError as exc:
            raise InvalidInput(f"package.json is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InvalidInput("package.json must hold a JSON object")
        data = {k: loaded[k] for k in ("dependencies", "overrides") if k in loaded}
    deps = dict(data.get("dependencies") or {})  # type: ignore[call-overload]
    for requirement in requirements:
        name, version = _split_npm(requirement)
        if name in deps and deps[name] != version:
            raise DependencyConflict(
                f"conflicting requirements: {name}@{deps[name]} and {name}@{version}"
            )
        deps[name] = version
    manifest: dict[str, object] = {"name": "hyac-deps", "private": True,
                                   "dependencies": dict(sorted(deps.items()))}
    if "overrides" in data:
        manifest["overrides"] = data["overrides"]
    return manifest


def _split_npm(requirement: str) -> tuple[str, str]:
    body = requirement[1:] if requirement.startswith("@") else requirement
    name, sep, version = body.partition("@")
    name = ("@" + name) if requirement.startswith("@") else name
    return name, version if sep and version else "*"


_NPM_FLAGS = ["--no-audit", "--no-fund", "--no-update-notifier", "--cache", "/tmp/npm"]


def npm_lock(manifest: dict[str, object], sandboxed: bool) -> str:
    npm, npm_home = _npm()
    with tempfile.TemporaryDirectory(prefix="hyac-resolve-") as work:
        Path(work, "package.json").write_text(json.dumps(manifest, indent=2))
        trust = host_trust("npm")
        result = run_sandboxed(
            [npm, "install", "--package-lock-only", "--ignore-scripts", *_NPM_FLAGS],
            writable=Path(work), readable=[npm_home, *trust.files], network=True,
            sandboxed=sandboxed, env=trust.env,
        )
        if result.returncode != 0:
            raise _installer_error("resolving the dependencies", result.stderr + result.stdout)
        return Path(work, "package-lock.json").read_text()


def npm_install(manifest: dict[str, object], lock: dict[str, object], target: Path,
                sandboxed: bool) -> None:
    npm, npm_home = _npm()
    (target / "package.json").write_text(json.dumps(manifest, indent=2))
    (target / "package-lock.json").write_text(json.dumps(lock))
    trust = host_trust("npm")
    result = run_sandboxed([npm, "ci", "--ignore-scripts", *_NPM_FLAGS], writable=target,
                           readable=[npm_home, *trust.files], network=True, sandboxed=sandboxed,
                           env=trust.env)
    if result.returncode != 0:
        raise _installer_error("installing the dependencies", result.stderr + result.stdout)
    packages = lock.get("packages")
    if isinstance(packages, dict) and any(
            isinstance(p, dict) and p.get("hasInstallScript") for p in packages.values()):
        # Install scripts are package code: they run now, with no network at all.
        result = run_sandboxed([npm, "rebuild", "--offline", *_NPM_FLAGS], writable=target,
                               readable=[npm_home], network=False, sandboxed=sandboxed)
        if result.returncode != 0:
            raise _installer_error("running the packages' install scripts",
                                   result.stderr + result.stdout)
