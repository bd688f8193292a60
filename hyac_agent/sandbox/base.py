"""The sandbox interface: start one worker for one runtime, isolated, then hand it code.

A backend turns a ``SandboxSpec`` into a running ``Sandbox``: a worker whose framed
channel is a connected unix socket and whose raw stdout/stderr are streams. Every
sandbox has its own code directory, empty at start and mounted read-only at ``/code``;
the agent fills it with exactly one function version's bundle (``load_code``) before it
sends ``init``. That is what lets warm pools pre-start generic sandboxes: a cold start
then costs a code load, not a sandbox boot. A sandbox's code directory is filled once
and the sandbox is never reused for another version or tenant.

Backends: ``docker`` (one container per worker), ``gvisor`` (the same, run by gVisor's
``runsc``), ``bwrap`` (bubblewrap namespaces),
``none`` (no isolation, development only).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import os
import secrets
import shutil
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hyac_agent.runtimes import Runtime, resolve
from hyac_agent.sandbox.limits import ResourceLimits

CODE_MOUNT = "/code"
RUNTIME_MOUNT = "/runtime"


@dataclass(frozen=True)
class SandboxSettings:
    """What every backend needs from the agent's configuration."""

    #: per-sandbox directories (code, channel) live here; only the agent reads it
    run_dir: Path
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    #: docker: image per runtime; ``{version}`` is e.g. 3.11
    docker_image: str = "hyac/python:{version}"
    #: docker: OCI runtime ("" = the daemon's default, "runsc" = gVisor, "kata-runtime")
    oci_runtime: str = ""
    #: bwrap, when the agent runs as root: the unprivileged host uid/gid it is probed with
    sandbox_uid: int = 65534
    #: bwrap, when the agent runs as root: (first, count) of the host uids sandboxes run
    #: as, one per sandbox, from a range no account uses (systemd leaves 1879048192 to
    #: 2147483647 unassigned)
    sandbox_uids: tuple[int, int] = (2_000_000_000, 65536)


@dataclass(frozen=True)
class SandboxSpec:
    runtime: Runtime
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    #: the function the sandbox serves; empty while it waits generic in a pool
    tenant: str = ""
    function: str = ""
    version: int = 0
    env: dict[str, str] = field(default_factory=dict)
    #: a dependency environment (hyac_agent.deps) mounted read-only at runtime.deps_mount
    deps_dir: Path | None = None

    @property
    def deps_source(self) -> Path | None:
        """The folder of ``deps_dir`` that is mounted (e.g. its node_modules)."""
        if self.deps_dir is None:
            return None
        return (self.deps_dir / self.runtime.deps_source).resolve()

    @property
    def memory_bytes(self) -> int:
        return self.limits.memory_bytes


class ProcessLike(Protocol):
    """What the worker needs of the sandbox's main process (asyncio's Process has it)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stdout(self) -> asyncio.StreamReader | None: ...

    @property
    def stderr(self) -> asyncio.StreamReader | None: ...

    async def wait(self) -> int: ...


def new_sandbox_id() -> str:
    return "sbx-" + secrets.token_hex(6)


class Sandbox:
    """A started worker: its process, the agent's end of the channel, its own code dir."""

    def __init__(
        self,
        process: ProcessLike,
        channel: socket.socket,
        code_dir: str,
        *,
        sandbox_id: str = "",
        host_dir: Path | None = None,
    ) -> None:
        self.process = process
        self.channel = channel
        #: where the function's bundle is, as the worker sees it
        self.code_dir = code_dir
        self.id = sandbox_id or new_sandbox_id()
        #: the per-sandbox directory on the host (its ``code/`` is mounted at code_dir)
        self.host_dir = host_dir
        self.loaded_sha256: str | None = None
        self._killed = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def host_code_dir(self) -> Path | None:
        return self.host_dir / "code" if self.host_dir else None

    def load_code(self, bundle_code_dir: Path, sha256: str) -> None:
        """Put one version's files into this sandbox's code dir; only ever once."""
        if self.loaded_sha256 is not None:
            raise RuntimeError(f"sandbox {self.id} already holds code {self.loaded_sha256}")
        target = self.host_code_dir
        if target is None:  # a backend that mounts the bundle directly
            self.loaded_sha256 = sha256
            return
        fill_code_dir(bundle_code_dir, target)
        self.loaded_sha256 = sha256

    def set_limits(self, limits: ResourceLimits) -> bool:
        """Change the running sandbox's limits; False if this sandbox cannot."""
        return False

    def exit_cause(self) -> str | None:
        """Why the worker died, when the sandbox knows better than its exit code."""
        return None

    async def kill(self) -> None:
        """Kill the worker and everything it started; safe to call twice."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=10)
        except asyncio.TimeoutError:
            pass
        self.channel.close()
        if not self._killed:
            self._killed = True
            await asyncio.to_thread(self.cleanup)

    def cleanup(self) -> None:
        """Release what the sandbox holds on the host (runs once, in a thread)."""
        if self.host_dir is not None:
            shutil.rmtree(self.host_dir, ignore_errors=True)


def fill_code_dir(source: Path, target: Path) -> None:
    """Hard-link (or copy) a bundle's files into an empty per-sandbox code dir.

    Bundles are immutable and their files read-only to sandboxes, so sharing inodes is
    safe; the per-sandbox directory keeps each sandbox's view to one version.
    """
    for folder, dirs, files in os.walk(source):
        rel = os.path.relpath(folder, source)
        dest = target if rel == "." else target / rel
        dest.mkdir(mode=0o755, exist_ok=True)
        os.chmod(dest, 0o755)
        for name in files:
            src = os.path.join(folder, name)
            if os.path.islink(src):  # bundles never hold links; refuse to follow one
                continue
            try:
                os.link(src, dest / name)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copyfile(src, dest / name)
                os.chmod(dest / name, 0o644)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]


def make_host_dir(run_dir: Path, sandbox_id: str) -> Path:
    """``RUN_DIR/sandboxes/ID`` with an empty ``code/`` (traversable, never writable)."""
    root = run_dir / "sandboxes"
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    host_dir = root / sandbox_id
    host_dir.mkdir(mode=0o711)
    (host_dir / "code").mkdir(mode=0o755)
    os.chmod(host_dir / "code", 0o755)
    return host_dir


def worker_environment(
    spec: SandboxSpec, code_mount: str, channel_fd: int | None, channel_path: str = ""
) -> dict[str, str]:
    """The worker's whole environment: nothing of the agent's leaks in."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HYAC_CODE_DIR": code_mount,
        # The worker's memory quota: an engine inside it (python3.12-wasm) caps its guest by it.
        "HYAC_MEMORY_BYTES": str(spec.limits.memory_bytes),
    }
    if channel_path:
        env["HYAC_CHANNEL_PATH"] = channel_path
    elif channel_fd is not None:
        env["HYAC_CHANNEL_FD"] = str(channel_fd)
    env.update(spec.runtime.environment(spec.deps_dir is not None))
    if spec.deps_dir is not None and spec.runtime.deps_mount == "":
        env["HYAC_DEPS_DIR"] = str(spec.deps_source)
    env.update(spec.env)
    return env


class SandboxBackend(abc.ABC):
    name: str = "abstract"
    #: whether the backend isolates the worker from the host at all
    isolating: bool = True

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        if settings is None:
            import tempfile

            settings = SandboxSettings(run_dir=Path(tempfile.mkdtemp(prefix="hyac-run-")))
        self.settings = settings

    @classmethod
    @abc.abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when the backend can run on this host, else what is missing and how to fix it."""

    @abc.abstractmethod
    def describe(self) -> dict[str, object]:
        """Which isolation features are in force, for `hyac-agent doctor` and the API."""

    @abc.abstractmethod
    async def start(self, spec: SandboxSpec) -> Sandbox: ...

    @property
    def label(self) -> str:
        """How ``hyac runtime ls`` names the backend (gvisor adds its platform)."""
        return self.name

    def resolve_runtime(self, name: str) -> Runtime:
        """The runtime called ``name`` as this backend runs it; InvalidInput if it cannot."""
        return resolve(name)

    def code_mount(self, spec: SandboxSpec) -> str:
        """Where the worker finds the function's bundle."""
        return CODE_MOUNT

    def sandbox_root(self, spec: SandboxSpec) -> Path:
        """Where per-sandbox directories are made (``ROOT/sandboxes/ID``)."""
        return self.settings.run_dir

    def cleanup_leftovers(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Remove sandboxes a previous agent process left behind (called once at start)."""

    #: the per-tenant networks (hyac_agent/tenancy/network/); None: no network at all
    networks: Any = None

    def attach_networks(self, egress_of: Callable[[str], Any], scope: str) -> None:  # noqa: B027
        """Give tenants with egress a network of their own (backends that can)."""

    def egress_unavailable(self) -> str | None:
        """None when tenants can have egress on this backend, else why not."""
        return f"the {self.name} sandbox cannot give a tenant a network of its own"
