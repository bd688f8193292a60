"""The bubblewrap backend: each worker in its own user, pid, net, mount, ipc and uts
namespaces, with a root filesystem of read-only system directories, the runtime and the
function's code, a private /tmp, no network and no capabilities.

What the worker can see: ``/usr`` (and the merged-usr links), the interpreter's own
prefix, a handful of harmless files of ``/etc``, the runtime at ``/runtime`` and the
function's bundle at ``/code``, all read-only. The agent's data directory, its token,
its environment and other functions' code are never mounted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache

from hyac_agent.sandbox.base import (
    CODE_MOUNT,
    RUNTIME_MOUNT,
    ProcessLauncher,
    SandboxSpec,
    worker_environment,
)

SANDBOX_UID = 1000
SANDBOX_GID = 1000
# Files of /etc that programs expect and that hold nothing about the host's secrets.
_ETC_FILES = ("ld.so.cache", "localtime", "nsswitch.conf", "mime.types")
_SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")


@lru_cache(maxsize=1)
def _bwrap_path() -> str | None:
    return shutil.which("bwrap")


@lru_cache(maxsize=1)
def _probe_error() -> str | None:
    bwrap = _bwrap_path()
    if bwrap is None:
        return (
            "bubblewrap is not installed: install it (Debian/Ubuntu: `apt-get install bubblewrap`,"
            " Fedora: `dnf install bubblewrap`) or run the agent with --insecure-no-sandbox"
            " for local development"
        )
    try:
        result = subprocess.run(
            [bwrap, "--unshare-all", "--ro-bind", "/", "/", "--", "/bin/true"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap cannot run: {exc}"
    if result.returncode != 0:
        return (
            f"bubblewrap cannot create namespaces here ({result.stderr.strip()}); enable "
            "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) "
            "or run the agent with --insecure-no-sandbox for local development"
        )
    return None


class BubblewrapBackend(ProcessLauncher):
    name = "bwrap"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _probe_error()

    def describe(self) -> dict[str, object]:
        return {
            "backend": self.name,
            "namespaces": ["user", "pid", "net", "mount", "ipc", "uts", "cgroup"],
            "network": "none",
            "filesystem": "read-only system dirs, runtime and code; private /tmp",
            "capabilities": "all dropped",
            "limits": "address-space rlimit from the function's memory setting",
        }

    def command(self, spec: SandboxSpec, channel_fd: int) -> tuple[list[str], dict[str, str]]:
        bwrap = _bwrap_path()
        assert bwrap is not None
        args = [
            bwrap,
            "--unshare-all",
            "--unshare-user",
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
        for name in _ETC_FILES:
            if os.path.exists(f"/etc/{name}"):
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        args += [
            "--ro-bind", str(spec.runtime.folder), RUNTIME_MOUNT,
            "--ro-bind", str(spec.code_dir), CODE_MOUNT,
            "--proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
            "--chdir", "/tmp",
        ]
        env = worker_environment(spec, self.code_mount(spec), channel_fd)
        for key, value in env.items():
            args += ["--setenv", key, value]
        command = spec.runtime.command(RUNTIME_MOUNT)
        if spec.memory_bytes:
            # prlimit caps the address space of the worker (cgroups come with the hardened backend).
            prlimit = shutil.which("prlimit")
            if prlimit:
                command = [prlimit, f"--as={spec.memory_bytes + 512 * 1024 * 1024}", "--"] + command
        return args + ["--"] + command, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
