"""The Docker backend: one container per worker, from a runtime image, hardened.

Each container runs as uid 1000 with every capability dropped, ``no-new-privileges``,
Hyac's own seccomp profile (the bubblewrap filter's rules, from the same table in
``seccomp.py``: Docker's default lets ``io_uring_setup`` and others through), a read-only
root filesystem, a size-capped tmpfs ``/tmp``, no network (``network_mode=none``; a
tenant with egress gets a bridge of its own), and memory (no swap), pids and CPU limits. The only host paths
it sees are the runtime folder, its own per-sandbox code directory (both read-only) and a
per-sandbox directory holding the channel socket. No Docker socket, no other mount.

The channel is a unix socket the agent listens on in that per-sandbox directory; the
worker connects to it (``HYAC_CHANNEL_PATH``) and the agent accepts exactly one
connection, then unlinks the socket. No TCP anywhere. ``oci_runtime`` selects gVisor
(``runsc``) or Kata (``kata-runtime``) where the daemon has them configured.

``python3.12-wasm`` runs on the image of the agent's own Python: the worker host embedding
wasmtime is any Python 3.9+ (the guest's CPython is inside the WebAssembly module), and
the engine's folder that scripts/setup-wasm.sh fills (wasmtime, the pinned module and its
compiled form) is mounted read-only at its host path, the one more mount those containers
see.

Another runtime runs here when its runtime.toml names an ``image`` and its worker connects
to the channel by path (``channel = "path"``): ``java17`` on ``hyac/java:17`` (Debian's
JDK, ``hyac-agent images build --runtime java17``). Its interpreter is the image's, and
its ``host_paths`` are the image's own files, not bound from the host; the worker is
sized by the container's memory (``{heap_mb}``), so it keeps that memory for its life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from hyac_agent.runtimes import Runtime
from hyac_agent.sandbox import seccomp
from hyac_agent.sandbox.base import (
    CODE_MOUNT,
    RUNTIME_MOUNT,
    Sandbox,
    SandboxBackend,
    SandboxSettings,
    SandboxSpec,
    make_host_dir,
    new_sandbox_id,
    worker_environment,
)
from hyac_agent.sandbox.limits import ResourceLimits
from hyac_agent.sandbox.prebuilt import prebuilt
from hyac_common.errors import InvalidInput, SandboxUnavailable
from hyac_common.paths import runtimes_dir

log = logging.getLogger("hyac.sandbox.docker")

CHANNEL_MOUNT = "/hyac"
CHANNEL_NAME = "channel.sock"
CONTAINER_USER = "1000:1000"
CONNECT_TIMEOUT = 30.0
_LABEL = "org.hyac.sandbox"
_RUNTIME_RE = re.compile(r"^python(3\.\d+)(-wasm)?$")


def _client(timeout: int = 60) -> Any:
    import docker  # the SDK is only needed when this backend is used

    return docker.from_env(timeout=timeout)


@lru_cache(maxsize=1)
def _probe_error() -> str | None:
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the Docker SDK for Python is not installed (pip install docker)"
    try:
        client = _client(timeout=5)
        client.ping()
    except Exception as exc:
        return (
            f"the Docker daemon is not reachable ({type(exc).__name__}); install and start it "
            "(scripts/setup-docker.sh, or `apt-get install docker.io` and start dockerd)"
        )
    return None


#: the first Docker release with the fix for libnetwork's lock-order deadlock between a
#: container's network leave and an endpoint's delete (moby/moby#46661, #42545)
DEADLOCK_FIXED = (20, 10, 27)


def daemon_version() -> str | None:
    """The Docker daemon's version ("20.10.24+dfsg1"), None when it does not answer."""
    try:
        return str(_client(timeout=5).version().get("Version") or "") or None
    except Exception:
        return None


def deadlock_warning(version: str | None) -> str | None:
    """What to do when ``version`` (the daemon's) has libnetwork's known deadlock: under
    container churn every docker command, and so every sandbox start, can hang for good."""
    numbers = re.match(r"(\d+)\.(\d+)\.(\d+)", version or "")
    if numbers is None or tuple(int(n) for n in numbers.groups()) >= DEADLOCK_FIXED:
        return None
    return (f"upgrade Docker to {'.'.join(map(str, DEADLOCK_FIXED))} or later (Docker's own "
            f"packages; Debian 12's docker.io is 20.10.24): {version} can deadlock under "
            "container churn (moby/moby#46661), and every docker command then hangs until "
            "dockerd is restarted")


def image_for(settings: SandboxSettings, runtime_name: str) -> str:
    match = _RUNTIME_RE.match(runtime_name)
    if not match:
        return _image_runtime(runtime_name).image
    if match.group(2):
        return _wasm_host_image(settings)
    return settings.docker_image.format(version=match.group(1))


#: Python versions whose runtime image may hold a python3.12-wasm worker host
_HOST_VERSIONS = ("3.13", "3.12", "3.11", "3.10", "3.9")


def _wasm_host_image(settings: SandboxSettings) -> str:
    """The image python3.12-wasm's worker host runs on: the agent's own Python's, else
    any Python runtime image there is (wasmtime's ctypes bindings run on 3.9+)."""
    own = f"{sys.version_info[0]}.{sys.version_info[1]}"
    names = [settings.docker_image.format(version=v) for v in (own, *_HOST_VERSIONS)]
    return next((name for name in names if _image_exists(name)), names[0])


@lru_cache(maxsize=32)
def _image_exists(image: str) -> bool:
    try:
        _client(timeout=10).images.get(image)
    except Exception:
        return False
    return True


def _image_runtime(name: str) -> Runtime:
    """A runtime other than Python's as its own image runs it (runtime.toml's ``image``,
    built from the runtime folder's Dockerfile by ``hyac-agent images build --runtime
    NAME``): the manifest's interpreter on the image's PATH, and the image's own files
    where the host's would be bound (``host_paths``). Only a worker that connects to its
    channel by path can run here; InvalidInput says what to do otherwise."""
    from hyac_agent import runtimes

    declared, manifest = runtimes.declared(name)
    buildable = (declared.folder / "Dockerfile").is_file()
    if declared.channel != "path" or not declared.image or not (
        buildable or _image_present(declared.image)
    ):
        raise InvalidInput(
            f"runtime {name!r} cannot run on this agent's docker sandbox, which has no image "
            f"for it; run the agent with --sandbox bwrap (HYAC_SANDBOX=bwrap) to serve "
            f"{name} functions"
        )
    major = declared.version.split(".")[0]
    interpreter = str(manifest["interpreter"]).format(version=declared.version, major=major)
    return replace(declared, interpreter=Path(interpreter), prefix=Path("/usr"), host_paths=())


def _host_runtime(name: str) -> Runtime | None:
    """The runtime as the host runs it, which builds its bootstrap (sandbox/prebuilt.py)
    for the image's interpreter; None without one on the host."""
    from hyac_agent import runtimes

    try:
        return runtimes.resolve(name)
    except InvalidInput:
        return None


def _no_image(name: str, image: str) -> InvalidInput:
    return InvalidInput(
        f"runtime {name!r} has no image on this agent ({image}): build it "
        f"with `hyac-agent images build --runtime {name}`"
    )


def _image_present(image: str) -> bool:
    """Whether the engine has ``image``; an absence is asked again (it may be built since)."""
    if not _image_exists(image):
        _image_exists.cache_clear()
    return _image_exists(image)


def _wasm_runtime(host: Runtime) -> Runtime:
    """python3.12-wasm as a container runs it: the image's ``python3`` starts the worker
    host directly (the launcher setup-wasm.sh wrote names the host's Python), with the
    engine's folder, ``HYAC_WASM_HOME``, bound read-only at its host path."""
    home = str(host.interpreter.parent.parent)  # HOME/bin/hyac-wasm-host
    return replace(
        host, interpreter=Path("python3"), prefix=Path("/usr"), args=("-I", "-B"),
        env={**host.env, "HYAC_WASM_HOME": home}, host_paths=(home,),
    )


class DockerProcess:
    """The container seen as a process: wait(), returncode, and stdout/stderr streams."""

    def __init__(self, container: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.container = container
        self.pid = int(container.attrs.get("State", {}).get("Pid") or 0)
        self.returncode: int | None = None
        self.stdout: asyncio.StreamReader = asyncio.StreamReader(limit=2**20, loop=loop)
        self.stderr: asyncio.StreamReader = asyncio.StreamReader(limit=2**20, loop=loop)
        self._loop = loop
        self._exited = asyncio.Event()
        for name, stream in (("stdout", self.stdout), ("stderr", self.stderr)):
            threading.Thread(
                target=self._pump, args=(name, stream), daemon=True, name=f"hyac-docker-{name}"
            ).start()
        threading.Thread(target=self._wait, daemon=True, name="hyac-docker-wait").start()

    def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        try:
            for chunk in self.container.logs(
                stdout=name == "stdout", stderr=name == "stderr", stream=True, follow=True
            ):
                self._loop.call_soon_threadsafe(stream.feed_data, chunk)
        except Exception:
            pass
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(stream.feed_eof)

    def _wait(self) -> None:
        code = -1
        try:
            code = int(self.container.wait().get("StatusCode", -1))
        except Exception:
            pass
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._set_exit, code)

    def _set_exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


class DockerSandbox(Sandbox):
    process: DockerProcess
    limits: ResourceLimits | None = None
    #: the worker sized something by its memory at start (python3.12-wasm's store limit)
    fixed_memory = False

    def set_limits(self, limits: ResourceLimits) -> bool:
        if limits == self.limits:
            return True
        if limits.pids != (self.limits.pids if self.limits else None):
            return False  # the pids limit cannot change on a running container
        if self.fixed_memory and limits.memory_bytes != (self.limits.memory_bytes if self.limits else None):
            return False
        try:
            self.process.container.update(**_memory_cpu(limits))
        except Exception as exc:
            log.warning("could not update the limits of %s: %s", self.id, exc)
            return False
        self.limits = limits
        return True

    def exit_cause(self) -> str | None:
        try:
            self.process.container.reload()
            if self.process.container.attrs["State"].get("OOMKilled"):
                return "out_of_memory"
        except Exception:
            pass
        return None

    async def kill(self) -> None:
        if not self._killed:
            await asyncio.to_thread(self._remove)
        self.channel.close()
        if not self._killed:
            self._killed = True
            await asyncio.to_thread(self.cleanup)

    def _remove(self) -> None:
        with contextlib.suppress(Exception):
            self.process.container.remove(force=True)


@lru_cache(maxsize=1)
def _security_opts() -> list[str]:
    options = ["no-new-privileges:true"]
    if seccomp.supported_machine() is not None:
        options.append(f"seccomp={seccomp.docker_profile()}")
    return options


def _memory_cpu(limits: ResourceLimits) -> dict[str, int]:
    return {
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,  # no swap
        "cpu_period": 100_000,
        "cpu_quota": int(100_000 * limits.cpus),
    }


class DockerBackend(SandboxBackend):
    name = "docker"
    sandbox_class: type[DockerSandbox] = DockerSandbox

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        super().__init__(settings)
        self._docker: Any = None

    @property
    def client(self) -> Any:
        if self._docker is None:
            self._docker = _client()
        return self._docker

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _probe_error()

    @classmethod
    def default_image_missing(cls, settings: SandboxSettings | None = None) -> str | None:
        """None when the image for the agent's own Python exists, else why not."""
        settings = settings or SandboxSettings(run_dir=Path("/nonexistent"))
        name = f"python{sys.version_info.major}.{sys.version_info.minor}"
        image = image_for(settings, name)
        if not _image_exists(image):
            return f"no runtime image {image} (build it: hyac-agent images build)"
        return None

    def describe(self) -> dict[str, object]:
        limits = self.settings.limits
        return {
            "backend": self.name,
            "image": self.settings.docker_image,
            "oci_runtime": self.settings.oci_runtime or "docker default (runc)",
            "network": "none by default; a bridge per tenant with egress, host unreachable",
            "filesystem": "read-only root; runtime and code read-only; "
            f"tmpfs /tmp capped at {limits.tmp_bytes // (1024 * 1024)} MiB",
            "user": CONTAINER_USER,
            "capabilities": "all dropped; no-new-privileges",
            "seccomp": (
                f"Hyac's profile: denies {len(seccomp.DENIED_SYSCALLS)} syscalls, AF_PACKET, "
                "AF_VSOCK and raw sockets, namespace clone flags"
                if seccomp.supported_machine() else
                "Docker's default profile (Hyac has none for this CPU architecture)"
            ),
            "limits": f"memory (no swap), pids {limits.pids}, cpus {limits.cpus:g}, 1024 files",
        }

    def resolve_runtime(self, name: str) -> Runtime:
        match = _RUNTIME_RE.match(name)
        if not match:
            runtime = _image_runtime(name)
            if not _image_present(runtime.image):
                raise _no_image(name, runtime.image)
            return prebuilt(runtime, _host_runtime(name), self._image_id(name, runtime.image),
                            self._train)
        image = image_for(self.settings, name)
        version = image.rsplit(":", 1)[-1] if match.group(2) else match.group(1)
        if not _image_present(image):
            raise InvalidInput(
                f"runtime {name!r} has no image on this agent ({image}): build it with "
                f"`hyac-agent images build --python {version}` (versions other than "
                "Debian's need --base python:X.Y-slim, which needs registry access)"
            )
        from hyac_agent import runtimes

        if match.group(2):
            return _wasm_runtime(runtimes.resolve(name))
        folder = runtimes_dir() / "python"
        base = runtimes._runtime_from_manifest(
            name, "python", version, folder, runtimes.load_manifest(folder)
        )
        return replace(base, interpreter=Path("python3"), prefix=Path("/usr"))

    def _image_id(self, name: str, image: str) -> str:
        """What names an image's JVM exactly: the image's id (a rebuild changes it)."""
        import docker.errors

        try:
            return str(self.client.images.get(image).id)
        except docker.errors.ImageNotFound:  # removed since it was looked for
            _image_exists.cache_clear()
            raise _no_image(name, image) from None

    def _train(self, argv: list[str], runtime: Runtime, out: Path) -> bool:
        """A training run (sandbox/prebuilt.py) in the runtime's image, as its workers run:
        the runtime folder read-only at /runtime, no network, uid 1000, no capabilities,
        ``out`` its only writable folder besides /tmp. A failure raises."""
        options: dict[str, Any] = {}
        if self.oci_runtime_for("none"):
            options["runtime"] = self.oci_runtime_for("none")
        self.client.containers.run(
            runtime.image, command=argv, remove=True, user=CONTAINER_USER, working_dir="/tmp",
            network_mode="none", read_only=True, cap_drop=["ALL"],
            security_opt=self.security_opts(), mem_limit=512 * 1024 * 1024,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=64m,mode=1777"},
            volumes={str(runtime.folder): {"bind": RUNTIME_MOUNT, "mode": "ro"},
                     str(out): {"bind": str(out), "mode": "rw"}},
            **options,
        )
        return True

    def attach_networks(self, egress_of: Callable[[str], Any], scope: str) -> None:
        from hyac_agent.tenancy.network import TenantNetworks

        self.networks = TenantNetworks(egress_of, scope, client=lambda: self.client)
        self.networks.cleanup_leftovers()

    def egress_unavailable(self) -> str | None:
        from hyac_agent.tenancy.network import missing_tools

        return missing_tools()

    def network_for(self, tenant: str) -> str:
        """The Docker network a tenant's sandboxes join: ``none`` unless the tenant has
        egress, then its own bridge (hyac_agent/tenancy/network/). Generic pool
        sandboxes (no tenant yet) never have a network."""
        if self.networks is None or not tenant:
            return "none"
        return str(self.networks.network_for(tenant))

    def security_opts(self) -> list[str]:
        """Docker's ``security_opt``: no-new-privileges and Hyac's seccomp profile."""
        return _security_opts()

    def oci_runtime_for(self, network: str) -> str:
        """The OCI runtime a sandbox on ``network`` runs under ("" = the daemon's default)."""
        return self.settings.oci_runtime

    def cleanup_leftovers(self) -> None:
        try:
            stale = self.client.containers.list(
                all=True, filters={"label": f"{_LABEL}.run_dir={self.settings.run_dir}"}
            )
        except Exception:
            return
        for container in stale:
            with contextlib.suppress(Exception):
                container.remove(force=True)

    async def start(self, spec: SandboxSpec) -> Sandbox:
        # The runtime as the image runs it (a caller may hold the host's resolution).
        runtime = self.resolve_runtime(spec.runtime.name)
        if runtime != spec.runtime:
            spec = replace(spec, runtime=runtime)
        sandbox_id = new_sandbox_id()
        host_dir = make_host_dir(self.settings.run_dir, sandbox_id)
        channel_dir = host_dir / "channel"
        channel_dir.mkdir(mode=0o755)
        os.chmod(channel_dir, 0o755)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dir_fd = os.open(channel_dir, os.O_PATH | os.O_DIRECTORY)
        container = None
        try:
            # Through /proc/self/fd the path stays short whatever the data dir's length.
            listener.bind(f"/proc/self/fd/{dir_fd}/{CHANNEL_NAME}")
            os.chmod(channel_dir / CHANNEL_NAME, 0o666)
            listener.listen(1)
            listener.setblocking(False)
            try:
                container = await asyncio.to_thread(self._run, spec, sandbox_id, host_dir)
            except Exception as exc:
                from docker.errors import DockerException

                if not isinstance(exc, DockerException):
                    raise
                # e.g. a limit the engine refuses, or the engine itself failing
                detail = getattr(exc, "explanation", None) or str(exc)
                raise SandboxUnavailable(f"docker could not start the sandbox: {detail}") from None
            loop = asyncio.get_running_loop()
            try:
                channel, _ = await asyncio.wait_for(loop.sock_accept(listener), CONNECT_TIMEOUT)
            except asyncio.TimeoutError:
                logs = await asyncio.to_thread(container.logs, tail=20)
                raise SandboxUnavailable(
                    f"the docker worker did not connect within {CONNECT_TIMEOUT:.0f}s: "
                    f"{logs.decode(errors='replace').strip()[-500:]}"
                ) from None
            channel.setblocking(True)
        except BaseException:
            if container is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(container.remove, force=True)
            import shutil

            shutil.rmtree(host_dir, ignore_errors=True)
            raise
        finally:
            listener.close()
            os.close(dir_fd)
            with contextlib.suppress(OSError):
                (channel_dir / CHANNEL_NAME).unlink()
        process = DockerProcess(container, asyncio.get_running_loop())
        sandbox = self.sandbox_class(
            process, channel, CODE_MOUNT, sandbox_id=sandbox_id, host_dir=host_dir
        )
        sandbox.limits = spec.limits
        # python3.12-wasm caps its store, a JVM its heap, by the memory they started with.
        sandbox.fixed_memory = spec.runtime.sized_at_start
        return sandbox

    def _run(self, spec: SandboxSpec, sandbox_id: str, host_dir: Path) -> Any:
        from docker.types import LogConfig, Ulimit

        limits = spec.limits
        env = worker_environment(spec, CODE_MOUNT, None)
        env["HYAC_CHANNEL_PATH"] = f"{CHANNEL_MOUNT}/{CHANNEL_NAME}"
        network = self.network_for(spec.tenant)
        options: dict[str, Any] = {}
        oci_runtime = self.oci_runtime_for(network)
        if oci_runtime:
            options["runtime"] = oci_runtime
        container = self.client.containers.run(
            image_for(self.settings, spec.runtime.name),
            command=spec.runtime.command(
                RUNTIME_MOUNT, channel=env["HYAC_CHANNEL_PATH"], deps=spec.deps_dir is not None,
                code=CODE_MOUNT, memory_bytes=limits.memory_bytes,
            ),
            detach=True,
            user=CONTAINER_USER,
            environment=env,
            working_dir="/tmp",
            hostname="hyac",
            network_mode=network,
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_bytes},mode=1777"},
            shm_size=16 * 1024 * 1024,
            cap_drop=["ALL"],
            security_opt=self.security_opts(),
            pids_limit=limits.pids,
            ulimits=[
                Ulimit(name="fsize", soft=limits.file_bytes, hard=limits.file_bytes),
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="nofile", soft=1024, hard=1024),
            ],
            volumes={
                str(spec.runtime.folder): {"bind": RUNTIME_MOUNT, "mode": "ro"},
                str(host_dir / "code"): {"bind": CODE_MOUNT, "mode": "ro"},
                str(host_dir / "channel"): {"bind": CHANNEL_MOUNT, "mode": "ro"},
                **({str(spec.deps_source): {"bind": spec.runtime.deps_mount, "mode": "ro"}}
                   if spec.deps_source is not None else {}),
                **{path: {"bind": path, "mode": "ro"} for path in spec.runtime.host_paths},
            },
            log_config=LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
            labels={
                _LABEL: sandbox_id,
                f"{_LABEL}.run_dir": str(self.settings.run_dir),
            },
            name=f"hyac-{sandbox_id}",
            **_memory_cpu(limits),
            **options,
        )
        container.reload()
        return container
