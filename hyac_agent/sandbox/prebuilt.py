"""A runtime's bootstrap built once per agent (runtime.toml's ``[prebuilt]``).

The java17 bootstrap is one source file the JDK can run as it is, but then every JVM
start compiles its 1,300 lines before the worker can connect: seconds of each pool
miss. Once per agent, the manifest's ``build`` arguments compile it with the host's
interpreter into ``FOLDER/.prebuilt/DIGEST/classes`` (DIGEST: the bootstrap's content),
and workers start with ``main`` in place of the source file.

- The build runs the runtime's own code and nothing of a tenant's, as a deploy's build
  steps run (deps/sandbox.py: bubblewrap, no network, a private folder its only
  writable one). Its output is renamed into place whole and never changed; sandboxes
  see it read-only with the rest of the runtime folder.
- Java 17 class files (``--release 17``) load in any JDK 17, so a container's JVM,
  another build than the host's perhaps, starts from the same classes.
- Where nothing can be built (a folder the agent cannot write, no interpreter on the
  host, a failed build) workers start from source, and a warning says why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from hyac_agent.runtimes import Runtime

log = logging.getLogger("hyac.sandbox.prebuilt")

#: the runtime folder's sub-folder holding one build per bootstrap content
PREBUILT = ".prebuilt"


@lru_cache(maxsize=16)
def prebuilt(runtime: Runtime, host: Runtime | None) -> Runtime:
    """``runtime`` started from its prebuilt bootstrap, built by ``host`` (the runtime as
    the host runs it: its interpreter, prefix and host paths); else ``runtime`` as it is."""
    if not runtime.prebuilt or runtime.main:
        return runtime
    if host is None:
        log.warning("%s workers start from source (slower): no interpreter on this host "
                    "to build its bootstrap with", runtime.name)
        return runtime
    built = _build(runtime.folder, runtime.bootstrap.name, host.interpreter, host.prefix,
                   host.host_paths, runtime.prebuilt["build"], runtime.name)
    if built is None:
        return runtime
    where = f"{{runtime}}/{PREBUILT}/{built}/classes"
    return replace(runtime, main=tuple(a.replace("{prebuilt}", where)
                                       for a in runtime.prebuilt["main"]))


@lru_cache(maxsize=16)
def _build(folder: Path, bootstrap: str, interpreter: Path, prefix: Path,
           host_paths: tuple[str, ...], build: tuple[str, ...], name: str) -> str | None:
    """The name of the bootstrap's build under ``folder/.prebuilt``, built if missing."""
    from hyac_agent.deps.sandbox import run_sandboxed

    source = folder / bootstrap
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:20]
    if (folder / PREBUILT / digest / "classes").is_dir():
        return digest
    if not os.access(folder, os.W_OK):
        log.warning("%s workers start from source (slower): %s is not writable, so its "
                    "bootstrap cannot be built there", name, folder)
        return None
    with tempfile.TemporaryDirectory(prefix="hyac-prebuild-") as work:
        out = Path(work) / "classes"
        argv = [str(interpreter), *(a.format(bootstrap=source, out=out) for a in build)]
        readable = [folder, prefix, *(Path(p) for p in host_paths if Path(p).is_dir())]
        try:
            result = run_sandboxed(argv, writable=Path(work), readable=readable,
                                   network=False, timeout=300.0)
            failure = "" if result.returncode == 0 and out.is_dir() else \
                (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
            if not failure:
                _install(out, folder / PREBUILT, digest)
        except Exception as exc:  # noqa: BLE001 - any failure means starting from source
            failure = str(exc) or type(exc).__name__
    if failure:
        log.warning("%s workers start from source (slower): building the bootstrap "
                    "failed: %s", name, failure[:300])
        return None
    return digest


def _install(classes: Path, base: Path, digest: str) -> None:
    """Move a build into ``base/digest`` whole, readable by every uid, writable by none
    but the agent's; a concurrent agent's identical build may be there first."""
    base.mkdir(mode=0o755, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
    try:
        shutil.copytree(classes, staging / "classes")
        for path in [staging, *staging.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        try:
            os.rename(staging, base / digest)
        except OSError:
            if not (base / digest / "classes").is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
