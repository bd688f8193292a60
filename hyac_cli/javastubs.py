"""The Java context API for javac and IDEs, generated from the java17 runtime itself.

The single source of truth is the ``Context`` class in ``runtimes/java/Bootstrap.java``
(what a function's ``handle(Context context)`` really receives), as the Python stubs come
from ``hyac_context.py``. ``build_context_java`` keeps its public members and their
javadoc, and replaces every body with ``throw new UnsupportedOperationException()``: the
result, ``Context.java``, declares exactly the members the runtime has, so ``javac`` and
IDEs type-check and complete ``context.``. The runtime compiles functions against the same
generated file (``runtimes/java/api/Context.java``, kept current by a test and by
``python -m hyac_cli.javastubs``); ``hyac init --runtime java17`` and ``hyac stubs`` write it
to ``typings/java/Context.java``.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

from hyac_common.errors import HyacError
from hyac_common.paths import runtimes_dir

STUB_NAME = "Context.java"
STUBS_DIR = "typings/java"
_START = "public class Context {"
_THROW = "{ throw new UnsupportedOperationException(); }"
_CLASS = re.compile(r"^public (?:static )?class (\w+)")


def is_java_runtime(runtime: str) -> bool:
    return runtime.startswith("java")


def source_path() -> Path:
    return runtimes_dir() / "java" / "Bootstrap.java"


def runtime_stub_path() -> Path:
    return runtimes_dir() / "java" / "api" / STUB_NAME


def _javadoc_start(lines: list[str], end: int) -> int:
    """The first line of the javadoc block ending just before ``end`` (or ``end``)."""
    k = end
    while k > 0 and lines[k - 1].strip().startswith("@"):
        k -= 1
    if k > 0 and lines[k - 1].strip().endswith("*/"):
        while k > 0 and not lines[k - 1].strip().startswith("/**"):
            k -= 1
        return k - 1 if k > 0 else end
    return end


def build_context_java(source: str | None = None) -> str:
    """``Context.java``: the public API of the runtime's Context class, bodies removed."""
    if source is None:
        path = source_path()
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise HyacError(f"cannot read the Java runtime {path}: {exc.strerror or exc}") from None
    lines = source.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(_START))
    except StopIteration:
        raise HyacError(f"the Java runtime declares no `{_START}`") from None
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    out = [
        f"// Generated from the java17 runtime's Bootstrap.java (sha256 {digest}) by hyac. Do not edit.",
        "// The members a function's handle(Context context) can use; docs/runtimes.md.",
        "import java.util.List;",
        "import java.util.Map;",
        "",
    ]
    first = _javadoc_start(lines, start)
    out += lines[first:start + 1]
    # (class name, depth at which its members sit, whether a constructor was kept)
    classes: list[list[object]] = [["Context", 1, False]]
    depth = 1
    i = start + 1
    while i < len(lines) and depth > 0:
        line = lines[i]
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped == "}" and depth == classes[-1][1]:
            name, _depth, has_ctor = classes.pop()
            if not has_ctor:
                out.append(f"{indent}    private {name}() {_THROW}")
            out.append(line)
            depth -= 1
            i += 1
            continue
        opens, closes = line.count("{"), line.count("}")
        member = depth == classes[-1][1] and stripped.startswith("public ")
        if not member:
            depth += opens - closes
            i += 1
            continue
        doc = _javadoc_start(lines, i)
        out += [lines[k] for k in range(doc, i) if not lines[k].strip().startswith("@")]
        match = _CLASS.match(stripped)
        if match:
            out.append(line)
            depth += 1
            classes.append([match.group(1), depth, False])
            i += 1
            continue
        if "{" not in line and stripped.endswith(";"):  # a field
            out.append(line)
            i += 1
            continue
        # A method or constructor: its signature (maybe on several lines), then no body.
        signature = [line]
        while "{" not in signature[-1]:
            i += 1
            signature.append(lines[i])
        head = "\n".join(signature)
        head = head[: head.index("{")].rstrip()
        if re.match(rf"\s*public {classes[-1][0]}\(", head):
            classes[-1][2] = True
        out.append(f"{head} {_THROW}")
        # Skip the body.
        level = sum(s.count("{") - s.count("}") for s in signature)
        i += 1
        while level > 0:
            level += lines[i].count("{") - lines[i].count("}")
            i += 1
    return "\n".join(out) + "\n"


def write_java_stub(root: Path) -> list[Path]:
    """Write ``typings/java/Context.java`` under a project; the paths written."""
    target = root / STUBS_DIR / STUB_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(build_context_java(), encoding="utf-8")
    return [target]


if __name__ == "__main__":  # python -m hyac_cli.javastubs: refresh the runtime's copy
    runtime_stub_path().write_text(build_context_java(), encoding="utf-8")
    sys.stdout.write(f"wrote {runtime_stub_path()}\n")
