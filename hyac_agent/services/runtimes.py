"""List, add, remove runtimes and choose the agent's default one."""

from __future__ import annotations

import base64
import binascii
import shutil
import sys
import tempfile
from pathlib import Path

from hyac_agent import runtimes
from hyac_agent.bundles import _check_path
from hyac_agent.sandbox import SandboxBackend
from hyac_agent.services.functions import FunctionService
from hyac_common.errors import Conflict, InvalidInput, NotFound
from hyac_common.wire import RuntimeInfo

DEFAULT_FILE = "default"


def default_runtime() -> str:
    """The agent's default runtime: the one ``hyac runtime default`` chose, else the
    agent's own python3.X."""
    try:
        name = (runtimes.added_dir() / DEFAULT_FILE).read_text().strip()
    except OSError:
        name = ""
    return name or f"python{sys.version_info.major}.{sys.version_info.minor}"


class RuntimeService:
    def __init__(self, backend: SandboxBackend, functions: FunctionService) -> None:
        self.backend = backend
        self.functions = functions

    # -- the default ------------------------------------------------------------------

    def default(self) -> str:
        return default_runtime()

    def set_default(self, name: str) -> str:
        self.backend.resolve_runtime(name)  # InvalidInput when it cannot run here
        runtimes.added_dir().mkdir(parents=True, exist_ok=True)
        (runtimes.added_dir() / DEFAULT_FILE).write_text(name + "\n")
        return name

    # -- listing ------------------------------------------------------------------------

    def list_runtimes(self, with_users: bool = True) -> list[RuntimeInfo]:
        runtimes.clear_caches()
        default = self.default()
        infos = []
        for row in runtimes.describe_all():
            backends = {"process": "ok" if row["available"] else row["reason"]}
            available, reason = row["available"], row["reason"]
            if available and self.backend.name != "none":
                # The automatic choice names the sandbox that actually serves the runtime.
                chooser = getattr(self.backend, "backend_for", None)
                serving = (chooser(row["name"]) if chooser else self.backend).label
                try:
                    self.backend.resolve_runtime(row["name"])
                    backends[serving] = "ok"
                except InvalidInput as exc:
                    backends[serving] = exc.message
                    available, reason = False, exc.message
            infos.append(RuntimeInfo(
                name=row["name"], family=row["family"], language=row.get("language", ""),
                versions=row.get("versions", []), backends=backends, available=available,
                reason=reason, interpreter=row.get("interpreter"), default=row["name"] == default,
                added=bool(row.get("added")),
                functions=self.functions.runtime_users(row["name"]) if with_users else [],
            ))
        return infos

    # -- adding and removing ---------------------------------------------------------------

    def add(self, name: str | None, files_b64: dict[str, str]) -> list[str]:
        """Add a runtime folder (``files_b64``) or re-enable a removed runtime (``name``)."""
        if not files_b64:
            if not name:
                raise InvalidInput("give a runtime folder or the name of a removed runtime")
            disabled = runtimes._disabled()
            if name not in disabled:
                runtimes.resolve(name)  # a clear error if it does not exist at all
                return [name]
            runtimes.set_disabled(disabled - {name})
            return [name]
        with tempfile.TemporaryDirectory(prefix="hyac-runtime-") as tmp:
            folder = Path(tmp) / "runtime"
            for rel, encoded in files_b64.items():
                _check_path(rel)
                try:
                    content = base64.b64decode(encoded, validate=True)
                except (binascii.Error, ValueError):
                    raise InvalidInput(f"file {rel!r} is not valid base64") from None
                target = folder / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            manifest = runtimes.load_manifest(folder)
            family = manifest["name"]
            if not family.isidentifier() or not family.islower() or any(c.isdigit() for c in family):
                raise InvalidInput(f"runtime name {family!r} must be lower-case letters")
            if manifest.get("runtime_dir", ".") != ".":
                raise InvalidInput("an added runtime must hold its own bootstrap (no runtime_dir)")
            if not (folder / manifest["bootstrap"]).is_file():
                raise InvalidInput(f"bootstrap {manifest['bootstrap']!r} is not in the folder")
            final = runtimes.added_dir() / family
            runtimes.added_dir().mkdir(parents=True, exist_ok=True)
            if final.exists():
                shutil.rmtree(final)
            shutil.copytree(folder, final)
            for path in [final, *final.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        names = runtimes.runtime_names(manifest)
        runtimes.set_disabled(runtimes._disabled() - set(names))
        runtimes.clear_caches()
        return names

    def remove(self, name: str) -> None:
        """Remove a runtime; refused while any function has a version on it."""
        known = {info.name: info for info in self.list_runtimes(with_users=False)}
        if name not in known:
            raise NotFound(f"no runtime {name!r} on this agent")
        users = self.functions.runtime_users(name)
        if users:
            raise Conflict(
                f"runtime {name!r} is used by {len(users)} function(s): {', '.join(users)}; "
                "remove them or redeploy them on another runtime first",
                functions=users,
            )
        if name == self.default():
            raise Conflict(f"runtime {name!r} is the agent's default; choose another default first")
        info = known[name]
        family_folder = runtimes.added_dir() / info.family
        siblings = [n for n, i in known.items() if i.family == info.family and n != name]
        if info.added and not siblings:
            shutil.rmtree(family_folder, ignore_errors=True)
        else:
            runtimes.set_disabled(runtimes._disabled() | {name})
        runtimes.clear_caches()
