"""A runtime's bootstrap built once per agent (runtime.toml's ``[prebuilt]``).

The java17 bootstrap is one source file the JDK can run as it is, but then every JVM
start compiles its 1,300 lines before the worker can connect: seconds of each pool
miss. Once per agent, the manifest's ``build`` arguments compile it with the host's
interpreter into ``FOLDER/.prebuilt/DIGEST/`` (DIGEST: the bootstrap's content), and
workers start with ``main`` in place of the source file. Then, where the backend can
run its workers' interpreter for it, a ``train`` run of the bootstrap alone dumps a
class data sharing archive there, one per JVM (an archive maps only into the JVM that
wrote it, and only with the jar at the path it had then: the runtime folder at
/runtime), which workers map with ``use``.

- The build runs the runtime's own code and nothing of a tenant's, as a deploy's build
  steps run (deps/sandbox.py: bubblewrap, no network, a private folder its only
  writable one). Its output is renamed into place whole and never changed; sandboxes
  see it read-only with the rest of the runtime folder.
- Java 17 class files (``--release 17``) load in any JDK 17, so a container's JVM,
  another build than the host's perhaps, starts from the same classes.
- The training run is the bootstrap's own work (``--train``: javac on a function of its
  own), never a run that saw a tenant's code, in a sandbox as a worker's but writing
  only the archive; the archive is installed beside the build, read-only to sandboxes.
  A stale or foreign archive is not mapped (``-Xshare:auto``): the JVM starts without.
- Where nothing can be built (a folder the agent cannot write, no interpreter on the
  host, a failed build) workers start from source, and a warning says why; without an
  archive they start from the build alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from hyac_agent.runtimes import Runtime

#: runs a training argv with the runtime's folder at /runtime and ``out`` writable at the
#: same path, as the backend runs its workers' interpreter; True when it succeeded
Trainer = Callable[[list[str], Runtime, Path], bool]

log = logging.getLogger("hyac.sandbox.prebuilt")

#: the runtime folder's sub-folder holding one build per bootstrap content
PREBUILT = ".prebuilt"


@lru_cache(maxsize=16)
def prebuilt(runtime: Runtime, host: Runtime | None, jvm: str = "",
             trainer: Trainer | None = None) -> Runtime:
    """``runtime`` started from its prebuilt bootstrap, built by ``host`` (the runtime as
    the host runs it: its interpreter, prefix and host paths); else ``runtime`` as it is.
    With ``trainer`` and ``jvm`` (what names the workers' JVM exactly), with the archive
    of a training run too."""
    if not runtime.prebuilt or runtime.main:
        return runtime
    if host is None:
        log.warning("%s workers start from source (slower): no interpreter on this host "
                    "to build its bootstrap with", runtime.name)
        return runtime
    built = _build(runtime.folder, runtime.bootstrap.name, host.interpreter, host.prefix,
                   host.host_paths, runtime.prebuilt["build"], runtime.prebuilt["main"],
                   runtime.name)
    if built is None:
        return runtime
    where = f"{{runtime}}/{PREBUILT}/{built}"
    main = tuple(a.replace("{prebuilt}", where) for a in runtime.prebuilt["main"])
    if trainer is None or not jvm or not runtime.prebuilt.get("train"):
        return replace(runtime, main=main)
    name = hashlib.sha256(jvm.encode()).hexdigest()[:16] + ".jsa"
    if _train(runtime, runtime.folder / PREBUILT / built, name, trainer):
        use = tuple(a.replace("{archive}", f"{where}/{name}") for a in runtime.prebuilt["use"])
        main = use + main
    return replace(runtime, main=main)


def _train(runtime: Runtime, build: Path, name: str, trainer: Trainer) -> bool:
    """Whether ``build/name`` holds an archive, dumped now if it did not."""
    if (build / name).is_file():
        return True
    with tempfile.TemporaryDirectory(prefix="hyac-train-") as work:
        out = Path(work) / "out"
        out.mkdir(mode=0o777)
        os.chmod(out, 0o777)  # the worker's uid writes it in a container
        where = f"{{runtime}}/{PREBUILT}/{build.name}"
        train = tuple(a.replace("{prebuilt}", where).replace("{archive}", f"{out}/{name}")
                      for a in runtime.prebuilt["train"])
        argv = replace(runtime, main=train).command("/runtime")
        try:
            ok = trainer(argv, runtime, out) and (out / name).is_file()
            if ok:
                staging = build / f".{name}.{os.getpid()}"
                shutil.copyfile(out / name, staging)
                os.chmod(staging, 0o644)
                os.rename(staging, build / name)
        except Exception as exc:  # noqa: BLE001 - any failure means no archive
            log.warning("%s workers start without a class data sharing archive: %s",
                        runtime.name, str(exc)[:300] or type(exc).__name__)
            return False
    if not ok:
        log.warning("%s workers start without a class data sharing archive: the training "
                    "run failed", runtime.name)
    return ok


def host_jvm(runtime: Runtime) -> str:
    """What names the host's JVM exactly: its libjvm's path, size and time (an upgrade
    changes them); "" when there is none to name."""
    for lib in sorted(runtime.prefix.glob("lib/server/libjvm.so")):
        info = lib.stat()
        return f"{lib}:{info.st_size}:{info.st_mtime_ns}"
    return ""


def train_in_build_sandbox(argv: list[str], runtime: Runtime, out: Path) -> bool:
    """A training run with the host's interpreter, as build steps run (deps/sandbox.py),
    the runtime folder at /runtime as in a worker's sandbox."""
    from hyac_agent.deps.sandbox import run_sandboxed

    readable = [runtime.prefix, *(Path(p) for p in runtime.host_paths if Path(p).is_dir())]
    result = run_sandboxed(argv, writable=out, readable=readable, network=False,
                           timeout=300.0, mounts={"/runtime": runtime.folder})
    return result.returncode == 0


@lru_cache(maxsize=16)
def _build(folder: Path, bootstrap: str, interpreter: Path, prefix: Path,
           host_paths: tuple[str, ...], build: tuple[str, ...], main: tuple[str, ...],
           name: str) -> str | None:
    """The name of the bootstrap's build under ``folder/.prebuilt``, built if missing: the
    digest of the source and of how it is built and started."""
    from hyac_agent.deps.sandbox import run_sandboxed

    source = folder / bootstrap
    parts = [source.read_bytes(), *(a.encode() for a in build + main)]
    digest = hashlib.sha256(b"\0".join(parts)).hexdigest()[:20]
    if (folder / PREBUILT / digest).is_dir():  # renamed into place whole
        return digest
    if not os.access(folder, os.W_OK):
        log.warning("%s workers start from source (slower): %s is not writable, so its "
                    "bootstrap cannot be built there", name, folder)
        return None
    with tempfile.TemporaryDirectory(prefix="hyac-prebuild-") as work:
        out = Path(work) / "out"
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


def _install(output: Path, base: Path, digest: str) -> None:
    """Move a build into ``base/digest`` whole, readable by every uid, writable by none
    but the agent's; a concurrent agent's identical build may be there first."""
    base.mkdir(mode=0o755, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
    try:
        shutil.copytree(output, staging, dirs_exist_ok=True)
        for path in [staging, *staging.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        try:
            os.rename(staging, base / digest)
        except OSError:
            if not (base / digest).is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
