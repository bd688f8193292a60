"""The deploy-time compile of a java17 function: javac's first error, or nothing.

The runtime's own bootstrap compiles (``java Bootstrap.java --check CODE ENTRY``) with
the same options and classpath its workers use, so a version that deploys is one that
loads. It runs as installer build steps do (deps/sandbox.py): under bubblewrap, without
a network, with the bundle in a private folder as its only writable directory and the
function's dependency jars read-only. javac runs no package code here: annotation
processing is off (``-proc:none``). A compile error fails the deploy with one line,
``functions/Hello.java:4: ';' expected`` (``syntax_error``, with path and line), before
anything is recorded.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path, PurePosixPath

from hyac_agent.deps.sandbox import run_sandboxed
from hyac_agent.runtimes import Runtime
from hyac_common.errors import FunctionSyntaxError, InstallFailed

#: where compiled classes travel in a bundle (runtimes/java/Bootstrap.java: Compiler.CLASSES)
CLASSES = ".hyac/classes"
#: the checking JVM's own heap: javac on a function's sources
CHECK_HEAP = "-Xmx384m"


def check_java(runtime: Runtime, files: dict[str, bytes], entry: str, deps: Path | None,
               sandboxed: bool) -> dict[str, bytes]:
    """Compile ``entry`` (and the files beside it) as the worker would, or raise
    FunctionSyntaxError with javac's first error. Returns the compiled classes as bundle
    files under ``.hyac/classes/``: workers load them instead of compiling again."""
    if any(PurePosixPath(rel).parts[0] == ".hyac" for rel in files):
        raise FunctionSyntaxError(".hyac/ in a java17 bundle is the agent's (compiled classes); "
                                  "rename it", path=".hyac", line=0)
    if not entry.endswith(".java"):
        raise FunctionSyntaxError(f"{entry}: a java17 function's entry is a .java file",
                                  path=entry, line=0)
    with tempfile.TemporaryDirectory(prefix="hyac-javac-") as work:
        code = Path(work)
        for rel, content in files.items():
            path = code / PurePosixPath(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        env = {"HYAC_JAVA_DEPS": str(deps)} if deps is not None else {}
        argv = [str(runtime.interpreter), CHECK_HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-XX:-UsePerfData", f"-Dhyac.api={runtime.folder / 'api'}",
                str(runtime.bootstrap), "--check", str(code), entry, str(code / CLASSES)]
        readable = [runtime.folder, runtime.prefix, *([deps] if deps is not None else []),
                    *(Path(p) for p in runtime.host_paths if Path(p).is_dir())]
        result = run_sandboxed(argv, writable=code, readable=readable, network=False,
                               timeout=120.0, sandboxed=sandboxed, env=env)
        if result.returncode == 0:
            out = code / CLASSES
            return {f"{CLASSES}/{p.name}": p.read_bytes() for p in sorted(out.iterdir())
                    if p.is_file() and not p.is_symlink()} if out.is_dir() else {}
    try:
        info = json.loads(result.stdout.strip().splitlines()[-1])
        where_path, line, message = str(info["path"]), int(info["line"]), str(info["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise InstallFailed(f"the Java compiler could not run: {detail}") from None
    where = f"{where_path}:{line}" if line else where_path
    raise FunctionSyntaxError(f"{where}: {message}", path=where_path, line=line)
