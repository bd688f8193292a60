"""Running an installer in a sandbox: a package's build step is hostile code.

The installer runs under bubblewrap in new user, pid, mount, ipc and uts namespaces with
every capability dropped, a read-only view of the system directories, the interpreter's
prefix and the installer itself, a private /tmp, and exactly one writable directory: the
environment being built. It shares the host's network, because it has to download
packages; on this kind of host that means whatever the agent itself can reach (here,
only the package registries). It never sees the agent's data directory, token or
environment. Without bubblewrap (``--insecure-no-sandbox`` hosts) it runs as a plain
process, and the agent says so in its log.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger("hyac.deps")

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
    argv: list[str], *, writable: Path, readable: list[Path], input_text: str | None = None,
    timeout: float = 600.0, sandboxed: bool = True, cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``writable`` as its only writable directory (also its cwd)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
    for key, value in os.environ.items():
        if key.startswith(_PASSED_ENV) and not key.startswith(("UV_CACHE_DIR",)):
            env[key] = value
    workdir = cwd or writable
    if not sandboxed or not sandbox_available():
        if sandboxed:
            log.warning("bubblewrap is missing: running the dependency installer unsandboxed")
        return subprocess.run(argv, input=input_text, capture_output=True, text=True,
                              timeout=timeout, env={**env, "HOME": str(writable)}, cwd=workdir)
    args = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--share-net", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--clearenv"]
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
    for extra in ("/opt/wheels", "/opt/pypi", "/opt/pypi-more"):  # local indexes, if any
        if os.path.isdir(extra):
            args += ["--ro-bind", extra, extra]
    args += ["--bind", str(writable), str(writable), "--chdir", str(workdir)]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return subprocess.run([*args, "--", *argv], input=input_text, capture_output=True,
                          text=True, timeout=timeout)
