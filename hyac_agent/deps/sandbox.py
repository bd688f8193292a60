"""Running an installer in a sandbox: a package's build step is hostile code.

Every installer step runs under bubblewrap in new user, pid, mount, ipc and uts
namespaces as uid 1000 (never root inside), with every capability dropped, no nested
user namespaces, the functions' seccomp filter, a read-only view of the system
directories, the interpreter's prefix and the installer itself, a private /tmp, and
exactly one writable directory: the environment being built; in a cgroup of its own
(``STEP_LIMITS``) where the host allows one.

Two kinds of step, and package code runs only in the second:
- ``network=True`` fetches: resolving and downloading with every build and lifecycle
  script disabled (``uv --no-build``, ``npm --ignore-scripts``). It shares the host's
  network, because it has to reach the package index.
- ``network=False`` builds: sdists and npm install scripts, in a network namespace of
  its own with nothing in it, so a build script reaches neither the internet nor the
  host's loopback services.

It never sees the agent's data directory, token or environment. Without bubblewrap a
fetch runs as a plain process (the agent says so in its log) and a build is refused;
an agent started with ``--insecure-no-sandbox`` runs both as plain processes.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from hyac_agent.sandbox import seccomp
from hyac_agent.sandbox.limits import MiB, ResourceLimits, cgroup_manager
from hyac_common.errors import InstallFailed

log = logging.getLogger("hyac.deps")

BUILD_UID = 1000
#: what one installer step may use (uv's and npm's own threads count as pids too)
STEP_LIMITS = ResourceLimits(memory_bytes=2048 * MiB, pids=512, cpus=1.0)
_SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
# What an installer needs of /etc: name resolution and CA certificates, pip's config.
_ETC = ("resolv.conf", "hosts", "nsswitch.conf", "gai.conf", "host.conf", "ssl",
        "ca-certificates", "ca-certificates.conf", "pki", "pip.conf", "npmrc", "ld.so.cache")
# Settings the installers read from the environment (indexes, proxies, certificates).
_PASSED_ENV = ("PIP_", "UV_", "NPM_CONFIG_", "npm_config_", "HTTP_PROXY", "HTTPS_PROXY",
               "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE",
               "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")


def sandbox_available() -> bool:
    return shutil.which("bwrap") is not None


def run_sandboxed(
    argv: list[str], *, writable: Path, readable: list[Path], network: bool,
    input_text: str | None = None, timeout: float = 600.0, sandboxed: bool = True,
    cwd: Path | None = None, env: dict[str, str] | None = None,
    mounts: dict[str, Path] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``writable`` as its only writable directory (also its cwd);
    with the host's network only when ``network`` (then no package code may run).
    ``mounts`` binds folders read-only at other paths (a runtime folder at /runtime)."""
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
    for key, value in os.environ.items():
        if key.startswith(_PASSED_ENV) and not key.startswith(("UV_CACHE_DIR",)):
            environ[key] = value
    environ.update(env or {})
    workdir = cwd or writable
    if not sandboxed or not sandbox_available():
        if sandboxed and not network:
            # Package code with the host's network and uid is what this module prevents.
            raise InstallFailed("building packages from source needs bubblewrap on this agent "
                                "(apt-get install bubblewrap); wheels install without it")
        if sandboxed:
            log.warning("bubblewrap is missing: fetching dependencies unsandboxed")
        return subprocess.run(argv, input=input_text, capture_output=True, text=True,
                              timeout=timeout, env={**environ, "HOME": str(writable)}, cwd=workdir)
    args = ["bwrap", "--unshare-user", "--disable-userns", "--uid", str(BUILD_UID),
            "--gid", str(BUILD_UID), "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--share-net" if network else "--unshare-net",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]
    for folder in _SYSTEM_DIRS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for name in _ETC:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    # /tmp first: what is mounted after it (the installer, the interpreter, the writable
    # folder) may itself live below /tmp on the host, and must not be hidden by it.
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in readable:
        real = str(Path(path).resolve())
        if not any(real == d or real.startswith(d + "/") for d in _SYSTEM_DIRS):
            args += ["--ro-bind", real, real]
    for target, source in (mounts or {}).items():
        args += ["--ro-bind", str(source), target]
    for extra in ("/opt/wheels", "/opt/pypi", "/opt/pypi-more"):  # local indexes, if any
        if os.path.isdir(extra):
            args += ["--ro-bind", extra, extra]
    args += ["--bind", str(writable), str(writable), "--chdir", str(workdir)]
    for key, value in environ.items():
        args += ["--setenv", key, value]
    fds: tuple[int, ...] = ()
    if seccomp.supported_machine() is not None:
        fds = (seccomp.filter_fd(),)
        args += ["--seccomp", str(fds[0])]
    # A cgroup, where the host lets the agent make one: a build that forks or allocates
    # without end stops at the limits instead of taking the host down; removing the
    # group afterwards kills anything a step left behind.
    manager, _ = cgroup_manager()
    group = manager.create(STEP_LIMITS) if manager is not None else None
    try:
        return subprocess.run(
            [*(group.enter_prefix() if group else []), *args, "--", *argv], input=input_text,
            capture_output=True, text=True, timeout=timeout, pass_fds=fds,
        )
    except subprocess.TimeoutExpired:
        raise InstallFailed(f"the installer took longer than {timeout:g} s and was stopped") from None
    finally:
        for fd in fds:
            os.close(fd)
        if group is not None:
            group.remove()
