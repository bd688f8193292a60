"""The bubblewrap backend: each worker in its own user, pid, net, mount, ipc, uts and
cgroup namespaces, with a root filesystem of read-only system directories, the runtime
and the function's code, a size-capped private /tmp, no network, no capabilities, no
nested user namespaces, a seccomp filter, and cgroup (or rlimit) limits.

What the worker can see: ``/usr`` (and the merged-usr links), the interpreter's own
prefix, a handful of harmless files of ``/etc``, the runtime at ``/runtime`` and its own
per-sandbox code directory at ``/code``, all read-only; the rest of ``/`` is a read-only
empty tmpfs. The agent's data directory, its token, its environment and other
functions' code are never mounted. When the agent runs as root, bubblewrap itself runs
as an unprivileged host uid of the sandbox's own (``sandbox_uids``, see uids.py), so even a
kernel-level escape from the namespaces lands as a uid no account and no other sandbox
has, not root; the per-sandbox directories then live outside the agent's private data
directory, in a 0711 directory with unguessable names.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from hyac_agent import runtimes
from hyac_agent.runtimes import Runtime, resolve
from hyac_agent.sandbox import seccomp, uids
from hyac_agent.sandbox.base import (
    CODE_MOUNT,
    RUNTIME_MOUNT,
    Sandbox,
    SandboxSettings,
    SandboxSpec,
    worker_environment,
)
from hyac_agent.sandbox.launcher import CHANNEL_DIR, CHANNEL_NAME, Launch, ProcessLauncher
from hyac_agent.sandbox.limits import (
    CgroupSet,
    ResourceLimits,
    can_adopt,
    cgroup_manager,
    rlimit_prefix,
    rlimits_unenforceable,
    worker_rlimits,
)
from hyac_agent.sandbox.prebuilt import PREBUILT, host_jvm, prebuilt, train_in_build_sandbox
from hyac_agent.sandbox.uids import UidPool
from hyac_common.errors import SandboxUnavailable

SANDBOX_UID = 1000
SANDBOX_GID = 1000
# Files of /etc that programs expect and that hold nothing about the host's secrets.
_ETC_FILES = ("ld.so.cache", "localtime", "nsswitch.conf", "mime.types")
# ...and those a sandbox with a network needs: name servers, host names, CA certificates.
_NETWORK_ETC = ("resolv.conf", "hosts", "ssl", "ca-certificates.conf")
_SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
_DEV_SHM_BYTES = 16 * 1024 * 1024
_CHANNEL_MOUNT = "/hyac"


@lru_cache(maxsize=1)
def _bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _accessible_to_others(path: Path | str) -> bool:
    """Whether an unrelated unprivileged uid can reach ``path`` (every parent o+x)."""
    current = Path(os.path.realpath(path))
    for folder in [current, *current.parents]:
        try:
            mode = folder.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


@lru_cache(maxsize=16)
def _compile_runtime(folder: Path, interpreter: Path) -> None:
    """Compile a Python runtime folder's modules to bytecode for the interpreter that runs
    them, once per agent. Workers start with ``-B``, which reads bytecode but never
    writes it (the folder is read-only in the sandbox): without this, every sandbox
    started compiled the bootstrap and the context module from source again, about
    15 ms of each pool miss. Where the agent cannot write the folder, nothing is done."""
    if not os.access(folder, os.W_OK):
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([str(interpreter), "-I", "-m", "compileall", "-q", str(folder)],
                       capture_output=True, timeout=120, check=False)


def _publish(target: Path, fill: Callable[[Path], None]) -> None:
    """Put a folder at ``target`` whole or not at all: ``fill`` makes it in a staging
    folder beside it, renamed into place (an identical one made meanwhile is kept)."""
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        made = staging / "made"
        fill(made)
        try:
            os.rename(made, target)
        except OSError:
            if not target.is_dir():  # not a concurrent agent's identical one
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@lru_cache(maxsize=32)
def _readable_copy(folder: Path) -> Path | None:
    """A copy of a runtime folder that the unprivileged sandbox uid can read, or None.

    A checkout in a private directory (root's own home, a 0700 release folder) holds the
    runtime folders out of that uid's reach; rather than run bubblewrap as root, the agent
    copies the folder once per content to ``/run/hyac-runtimes`` (root's own, never
    writable by anyone else) and binds the copy.
    """
    base = Path("/run/hyac-runtimes")
    try:
        base.mkdir(mode=0o755, exist_ok=True)
        info = base.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None
        digest = hashlib.sha256()
        for path in sorted(folder.rglob("*")):
            if {"__pycache__", PREBUILT} & set(path.parts) or not path.is_file():
                continue
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        target = base / f"{folder.name}-{digest.hexdigest()[:20]}"
        if not target.is_dir():
            def fill(copy: Path) -> None:
                shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("__pycache__", PREBUILT))
                for path in [copy, *copy.rglob("*")]:
                    executable = path.is_dir() or os.stat(path).st_mode & stat.S_IXUSR
                    os.chmod(path, 0o755 if executable else 0o644)

            _publish(target, fill)
        return target if _accessible_to_others(target) else None
    except OSError:
        return None


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(source, target)


def _reachable_view(environment: Path, base: Path) -> Path | None:
    """A view of a dependency environment that the unprivileged sandbox uids can reach,
    in ``base`` (the agent's 0711 sandbox root), or None.

    Environments live in the agent's private data directory (``DATA_DIR/deps``), which
    bubblewrap, once it runs as a sandbox's own uid, cannot bind from. Environments are
    complete and never change once in place, and everything in them is readable by
    anyone: the view hard-links their files (copies them across file systems), once
    per environment and agent.
    """
    name = hashlib.sha256(str(environment).encode()).hexdigest()[:24]
    target = base / "deps" / name
    if target.is_dir():
        return target
    try:
        target.parent.mkdir(mode=0o711, exist_ok=True)

        def fill(view: Path) -> None:
            shutil.copytree(environment, view, symlinks=True, copy_function=_link_or_copy)
            os.chmod(view, 0o755)

        _publish(target, fill)
    except OSError:
        return None
    return target if _accessible_to_others(target) else None


def _drop_to(uid: int) -> list[str]:
    """As root, start bubblewrap as an unprivileged uid (it then needs no setuid bit)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


@lru_cache(maxsize=4)
def _probe_error(uid: int = 65534) -> str | None:
    bwrap = _bwrap_path()
    if bwrap is None:
        return (
            "bubblewrap is not installed: install it (Debian/Ubuntu: `apt-get install bubblewrap`,"
            " Fedora: `dnf install bubblewrap`) or run the agent with --insecure-no-sandbox"
            " for local development"
        )
    try:
        result = subprocess.run(
            [*_drop_to(uid), bwrap, "--unshare-all", "--ro-bind", "/", "/", "--", "/bin/true"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap cannot run: {exc}"
    if result.returncode != 0:
        return (
            f"bubblewrap cannot create namespaces here ({result.stderr.strip()}); enable "
            "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
            "user.max_user_namespaces>0) or run the agent with --insecure-no-sandbox for "
            "local development"
        )
    return None


@lru_cache(maxsize=1)
def _seccomp_error() -> str | None:
    machine = seccomp.supported_machine()
    if machine is None:
        return "no seccomp filter for this CPU architecture (x86_64 and aarch64 only)"
    return None


def _limits_error(host_uid: int | None = None, uid_per_sandbox: bool = False) -> str | None:
    """Why this host can enforce neither cgroups nor binding rlimits, or None."""
    manager, cgroup_text = cgroup_manager()
    if manager is not None:
        return None
    if host_uid is None:
        uid_per_sandbox = bool(os.geteuid() == 0 and _drop_to(0))
        host_uid = SandboxSettings.sandbox_uid if uid_per_sandbox else os.geteuid()
    reason = rlimits_unenforceable(host_uid, uid_per_sandbox)
    if reason is None:
        return None
    return (
        f"no limits would bind: cgroups are unavailable ({cgroup_text}) and rlimits cannot "
        f"replace them: {reason}"
    )


class BubblewrapSandbox(Sandbox):
    cgroup: CgroupSet | None = None
    limits: ResourceLimits | None = None
    #: returns the sandbox's own host uid to the pool
    release_uid: Callable[[], None] | None = None

    def set_limits(self, limits: ResourceLimits) -> bool:
        if limits == self.limits:
            return True
        if self.cgroup is None:
            return False  # rlimits are fixed at start
        self.cgroup.set_limits(limits)
        self.limits = limits
        return True

    def exit_cause(self) -> str | None:
        if self.cgroup is not None and self.cgroup.oom_killed():
            return "out_of_memory"
        return None

    def cleanup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()
        super().cleanup()
        if self.release_uid is not None:  # last: nothing of the sandbox runs as it any more
            self.release_uid()
            self.release_uid = None


class BubblewrapBackend(ProcessLauncher):
    name = "bwrap"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _probe_error() or _limits_error()

    def describe(self) -> dict[str, object]:
        manager, cgroup_text = cgroup_manager()
        limits = self.settings.limits
        return {
            "backend": self.name,
            "namespaces": ["user", "pid", "net", "mount", "ipc", "uts", "cgroup"],
            "nested_user_namespaces": "disabled",
            "network": "none by default; a network namespace per tenant with egress, host unreachable"
            if self.egress_unavailable() is None else "none",
            "filesystem": "read-only root, system dirs, runtime and code; "
            f"private /tmp capped at {limits.tmp_bytes // (1024 * 1024)} MiB",
            "capabilities": "all dropped; no-new-privileges",
            "host_uid": self._host_uid_text(),
            "seccomp": _seccomp_error() or f"filter denies {len(seccomp.DENIED_SYSCALLS)} "
            "syscalls, AF_PACKET, AF_VSOCK and raw sockets, namespace clone flags",
            "limits": (
                f"{cgroup_text}: memory, pids {limits.pids}, cpus {limits.cpus:g}"
                if manager else
                f"rlimits (private memory {limits.memory_bytes // (1024 * 1024)} MiB, "
                f"processes {limits.pids} per sandbox, CPU seconds, file size, 1024 files); "
                f"cgroups unavailable: {cgroup_text}"
                if _limits_error() is None else str(_limits_error())
            ),
            "egress": self.egress_unavailable() or "per tenant: none, allow, or an allowlist",
        }

    def _host_uid_text(self) -> str:
        if os.geteuid() != 0:
            return f"{os.geteuid()} (the agent's own, unprivileged)"
        if not _drop_to(0):
            return "0 (root): install setpriv (util-linux) to run sandboxes unprivileged"
        try:
            runtime = self.resolve_runtime(
                f"python{sys.version_info.major}.{sys.version_info.minor}"
            )
        except Exception:
            return f"{self.settings.sandbox_uid} where the interpreter is reachable by it"
        if self.drops_privileges(runtime):
            first, count = self.settings.sandbox_uids
            return f"one of its own per sandbox, {first} to {first + count - 1} (unprivileged)"
        return (
            f"0 (root) for {runtime.name}: its interpreter {runtime.prefix} is not reachable "
            f"by uid {self.settings.sandbox_uid}; install it outside private directories"
        )

    def attach_networks(self, egress_of: Callable[[str], Any], scope: str) -> None:
        from hyac_agent.tenancy.network import TenantNamespaces, missing_tools

        if missing_tools() is None:
            self.networks = TenantNamespaces(egress_of, scope)
            self.networks.cleanup_leftovers()

    def egress_unavailable(self) -> str | None:
        from hyac_agent.tenancy.network import missing_tools

        reason = missing_tools()
        return f"bubblewrap egress needs a network namespace per tenant: {reason}" if reason else None

    def started(self, pid: int, launch: Launch) -> None:
        """Put the sandbox's processes in its cgroup, before the worker gets its ``init``
        (and with it the function's code): until then only bubblewrap and the runtime's
        bootstrap run, and whatever they fork from now on is born in the group. When
        bubblewrap has made the sandbox's cgroup namespace before the move, it is rooted
        at the agent's group, and the worker sees its own as ``/hyac-<random>``: a name
        that tells nothing about the host."""
        if isinstance(launch.extra, CgroupSet) and can_adopt():  # else entered by a prefix
            try:
                launch.extra.adopt(pid)
            except OSError as exc:
                raise SandboxUnavailable(f"the sandbox could not be put in its cgroup: {exc}") from None

    def make_sandbox(self, process, channel, spec, sandbox_id, host_dir, launch):  # type: ignore[no-untyped-def]
        sandbox = BubblewrapSandbox(
            process, channel, self.code_mount(spec), sandbox_id=sandbox_id, host_dir=host_dir
        )
        sandbox.cgroup = launch.extra if isinstance(launch.extra, CgroupSet) else None
        sandbox.limits = spec.limits
        if launch.host_uid is not None:
            sandbox.release_uid = functools.partial(self._uids.give_back, launch.host_uid)
        return sandbox

    def __init__(self, settings=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self._shared_root: Path | None = None
        # As root, sandboxes run as uids of their own, held host-wide: every agent on
        # the host draws from the same range.
        self._uids = UidPool(*self.settings.sandbox_uids,
                             lock_dir=uids.LOCK_DIR if os.geteuid() == 0 else None)

    def drops_privileges(self, runtime: Runtime) -> bool:
        """As root: whether bwrap runs as ``sandbox_uid`` for this runtime.

        bubblewrap resolves bind sources as the uid it runs as, so the interpreter's
        prefix must be reachable by it (an interpreter under /root is not).
        """
        if not _drop_to(0):
            return False
        return _accessible_to_others(runtime.prefix) and _accessible_to_others(runtime.folder)

    def resolve_runtime(self, name: str) -> Runtime:
        runtime = self._resolve_runtime(name)
        if runtime.family == "python" and runtime.interpreter.name.startswith("python"):
            _compile_runtime(runtime.folder, runtime.interpreter)
        return prebuilt(runtime, runtime, host_jvm(runtime), train_in_build_sandbox)

    def _resolve_runtime(self, name: str) -> Runtime:
        runtime = resolve(name)
        if not _drop_to(0):
            return runtime
        if not _accessible_to_others(runtime.folder):
            runtime = replace(runtime, folder=_readable_copy(runtime.folder) or runtime.folder)
        if self.drops_privileges(runtime) or runtime.family != "python":
            return runtime
        # Prefer an interpreter of the same version that the unprivileged uid can reach.
        for candidate in runtimes._candidates(runtime.version):
            probed = runtimes._probe(candidate)
            if probed and _accessible_to_others(probed[1]) and _accessible_to_others(probed[0]):
                return replace(runtime, interpreter=Path(probed[0]), prefix=Path(probed[1]))
        return runtime

    def sandbox_root(self, spec: SandboxSpec) -> Path:
        if not self.drops_privileges(spec.runtime):
            return self.settings.run_dir
        if self._shared_root is None:
            # The agent's data dir is private; these dirs must be reachable by sandbox_uid.
            base = "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()
            self._shared_root = Path(tempfile.mkdtemp(prefix="hyac-sandboxes-", dir=base))
            os.chmod(self._shared_root, 0o711)
            atexit.register(shutil.rmtree, self._shared_root, True)
        return self._shared_root

    def prepare(self, spec: SandboxSpec, channel_fd: int, host_dir: Path) -> Launch:
        bwrap = _bwrap_path()
        assert bwrap is not None
        launch = Launch([], {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        fds: list[int] = []

        try:
            manager, _ = cgroup_manager()
            cgroup = manager.create(spec.limits) if manager else None
            prefix_argv: list[str] = []
            # The cgroup is entered once the process is started (``started``), not by a
            # prefix: that is 10-15 ms quicker for every sandbox that boots.
            launch.extra = cgroup
            if cgroup is not None and not can_adopt():
                prefix_argv += cgroup.enter_prefix()
            deps = spec.deps_source
            # A tenant with egress: the sandbox joins the tenant's network namespace.
            netns = self.networks.netns_for(spec.tenant) if self.networks and spec.tenant else None
            if netns is not None:
                prefix_argv += [shutil.which("nsenter") or "nsenter", f"--net={netns}", "--"]
            host_uid = os.geteuid()
            if (deps is not None and self.drops_privileges(spec.runtime)
                    and not _accessible_to_others(deps)):
                deps = _reachable_view(deps, self.sandbox_root(spec)) or deps
            if self.drops_privileges(spec.runtime) and (deps is None or _accessible_to_others(deps)):
                host_uid = launch.host_uid = self._uids.take()
                prefix_argv += _drop_to(host_uid)
            limits_error = (
                None if cgroup is not None
                else _limits_error(host_uid, uid_per_sandbox=launch.host_uid is not None)
            )
            if limits_error:
                raise SandboxUnavailable(f"the {spec.runtime.name} sandbox cannot start: {limits_error}")
            if cgroup is None and spec.runtime.needs_cgroups:
                raise SandboxUnavailable(
                    f"the {spec.runtime.name} sandbox cannot start: its memory limit needs cgroups "
                    f"({spec.runtime.needs_cgroups}), and cgroups are unavailable here "
                    f"({cgroup_manager()[1]})"
                )
            args = [
                bwrap,
                "--unshare-all",
                *(["--share-net"] if netns is not None else []),
                "--unshare-user",
                "--disable-userns",
                "--uid", str(SANDBOX_UID),
                "--gid", str(SANDBOX_GID),
                "--hostname", "hyac",
                "--die-with-parent",
                "--new-session",
                "--cap-drop", "ALL",
                "--clearenv",
            ]
            for system_dir in _SYSTEM_DIRS:
                if os.path.islink(system_dir):
                    args += ["--symlink", os.readlink(system_dir), system_dir]
                elif os.path.isdir(system_dir):
                    args += ["--ro-bind", system_dir, system_dir]
            prefix = str(spec.runtime.prefix)
            if not any(prefix == d or prefix.startswith(d + "/") for d in _SYSTEM_DIRS):
                args += ["--ro-bind", prefix, prefix]
            for name in _ETC_FILES + (_NETWORK_ETC if netns is not None else ()):
                if os.path.exists(f"/etc/{name}"):
                    args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
            # A runtime outside the system dirs (node or deno from a cache dir) is bound
            # at its own path, read-only; so is a function's dependency environment.
            if deps is not None:
                args += ["--ro-bind", str(deps), spec.runtime.deps_mount]
            for host_path in spec.runtime.host_paths:  # e.g. a JDK's /etc/java-17-openjdk
                if os.path.isdir(host_path):
                    args += ["--ro-bind", host_path, host_path]
            channel_path = ""
            if channel_fd < 0:  # the worker connects to a socket (runtime.channel == "path")
                channel_path = f"{_CHANNEL_MOUNT}/{CHANNEL_NAME}"
                args += ["--ro-bind", str(host_dir / CHANNEL_DIR), _CHANNEL_MOUNT]
            limits = spec.limits
            args += [
                "--ro-bind", str(spec.runtime.folder), RUNTIME_MOUNT,
                "--ro-bind", str(host_dir / "code"), CODE_MOUNT,
                "--proc", "/proc",
                "--dev", "/dev",
                "--size", str(_DEV_SHM_BYTES), "--tmpfs", "/dev/shm",
                "--size", str(limits.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp",
                "--remount-ro", "/",
                "--chdir", "/tmp",
            ]
            if _seccomp_error() is None:
                filter_fd = seccomp.filter_fd()
                fds.append(filter_fd)
                launch.owned_fds.append(filter_fd)
                args += ["--seccomp", str(filter_fd)]
            env = worker_environment(
                spec, self.code_mount(spec), None if channel_fd < 0 else channel_fd, channel_path
            )
            command: list[str] = []
            if cgroup is not None and spec.runtime.applies_rlimits:
                # The worker sets them on itself before it reads its function; without
                # cgroups the rlimits are the quota, and prlimit sets them as before.
                env["HYAC_RLIMITS"] = worker_rlimits(limits)
            else:
                command += rlimit_prefix(limits, cgroups=cgroup is not None,
                                         reserved_bytes=spec.runtime.reserved_bytes)
            for key, value in env.items():
                args += ["--setenv", key, value]
            command += spec.runtime.command(
                RUNTIME_MOUNT, channel=channel_path, deps=deps is not None, code=CODE_MOUNT,
                memory_bytes=limits.memory_bytes,
            )
        except BaseException:
            launch.close()
            self.abandon(launch)
            raise
        launch.argv = prefix_argv + args + ["--"] + command
        launch.pass_fds = tuple(fds)
        return launch

    def abandon(self, launch: Launch) -> None:
        if isinstance(launch.extra, CgroupSet):
            launch.extra.remove()
            launch.extra = None
        if launch.host_uid is not None:
            self._uids.give_back(launch.host_uid)
            launch.host_uid = None
