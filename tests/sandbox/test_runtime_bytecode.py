"""The Python runtime's own modules are compiled for the interpreter that runs them, so a
worker started with ``-B`` (which never writes bytecode) loads them instead of compiling
them from source on every sandbox start."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from hyac_agent.runtimes import resolve
from hyac_agent.sandbox.bubblewrap import _compile_runtime


def test_a_worker_loads_the_runtime_from_bytecode(tmp_path: Path) -> None:
    runtime = resolve(f"python{sys.version_info.major}.{sys.version_info.minor}")
    folder = tmp_path / "python"
    shutil.copytree(runtime.folder, folder, ignore=shutil.ignore_patterns("__pycache__"))
    interpreter = str(runtime.interpreter)

    def loaded_from_bytecode() -> bool:
        done = subprocess.run(
            [interpreter, "-I", "-B", "-v", "-c",
             f"import sys; sys.path.insert(0, {str(folder)!r}); import hyac_context"],
            capture_output=True, text=True, check=True,
        )
        return f"code object from '{folder}/__pycache__/hyac_context." in done.stderr

    assert not loaded_from_bytecode()  # -B: nothing was written by that start either
    _compile_runtime(folder, runtime.interpreter)
    assert loaded_from_bytecode()
