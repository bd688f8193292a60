"""The CLI finds JavaScript/TypeScript functions; Python discovery is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyac_cli.dts import build_dts
from hyac_cli.manifest import check_sources, load_project
from hyac_cli.stubs import ProjectFacts
from hyac_common.errors import InvalidInput


def make(root: Path, runtime: str, files: dict[str, str], extra: str = "") -> Path:
    (root / "hyac.toml").write_text(f'[project]\nname = "p"\nruntime = "{runtime}"\n{extra}')
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_script_functions_are_discovered(tmp_path: Path) -> None:
    make(tmp_path, "node20", {
        "functions/a.js": "exports.main = () => 1;",
        "functions/b.mjs": "export const main = () => 1;",
        "functions/c.ts": "export const main = () => 1;",
        "functions/d/index.js": "exports.main = () => 1;",
        "functions/d/helper.js": "",
        "functions/types.d.ts": "",
        "functions/py.py": "def main(context):\n    return 1\n",
        "functions/pkg/main.py": "def main(context):\n    return 1\n",
    }, '[functions.c]\nruntime = "deno"\n[functions.py]\nruntime = "python3.11"\n'
       '[functions.pkg]\nruntime = "python3.11"\n')
    project = load_project(tmp_path)
    entries = {name: spec.entry for name, spec in project.functions.items()}
    assert entries == {
        "a": "functions/a.js", "b": "functions/b.mjs", "c": "functions/c.ts",
        "d": "functions/d/index.js", "py": "functions/py.py", "pkg": "functions/pkg/main.py",
    }
    assert project.functions["d"].files == ["functions/d/helper.js", "functions/d/index.js"]
    check_sources(project, list(project.functions.values()))


def test_runtime_and_language_must_agree(tmp_path: Path) -> None:
    make(tmp_path, "python3.11", {"functions/a.js": "exports.main = () => 1;"})
    project = load_project(tmp_path)
    with pytest.raises(InvalidInput, match='runtime = "node20"'):
        check_sources(project, list(project.functions.values()))


def test_project_requirements_txt_applies_to_python_functions(tmp_path: Path) -> None:
    make(tmp_path, "python3.11", {"functions/a.py": "def main(context):\n    return 1\n",
                                  "requirements.txt": "six==1.16.0  # pinned\n\n"})
    assert load_project(tmp_path).functions["a"].config["requirements"] == ["six==1.16.0"]


def test_dts_names_the_project_functions_and_env() -> None:
    text = build_dts(ProjectFacts("t", ("hello", "report"), ("REGION",)))
    assert 'type FunctionName = "hello" | "report";' in text
    assert 'type EnvName = "REGION";' in text and "var context: FunctionContext;" in text
