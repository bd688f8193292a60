from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hyac_cli.manifest import (
    TomlLines,
    check_sources,
    default_runtime,
    find_project_root,
    function_keys,
    load_project,
    require_project_root,
)
from hyac_common.errors import InvalidInput, ManifestError
from hyac_common.wire import FunctionConfig

from .conftest import HELLO, write


def make(root: Path, manifest: str, files: dict[str, str] | None = None) -> Path:
    default = {"functions/hello.py": HELLO}
    return write(root, {"hyac.toml": manifest, **(default if files is None else files)})


def test_minimal_project_gets_defaults(tmp_path: Path) -> None:
    project = load_project(make(tmp_path, '[project]\nname = "demo"\n'))
    assert project.name == "demo"
    assert project.tenant == "default"
    assert project.runtime == default_runtime() == f"python3.{sys.version_info.minor}"
    hello = project.functions["hello"]
    assert hello.entry == "functions/hello.py"
    assert hello.files == ["functions/hello.py"]
    assert hello.config == {"runtime": project.runtime}


def test_function_settings_are_converted(tmp_path: Path) -> None:
    root = make(tmp_path, """\
        [project]
        name = "demo"
        runtime = "python3.12"
        tenant = "acme"

        [functions.hello]
        timeout = "10m"
        memory = "256Mi"
        background = true
        retries = 3
        env = { REGION = "eu" }
        requirements = ["httpx>=0.27"]
        handler = "handle"
        retry_backoff = "2m"
        retry_backoff_max = 3600
        task_max_age = "1h30m"
        callback_url = "https://example.com/done"
        """)
    config = load_project(root).functions["hello"].config
    assert config == {
        "runtime": "python3.12", "timeout": 600.0, "memory": 256 * 1024 * 1024,
        "background": True, "retries": 3, "env": {"REGION": "eu"},
        "requirements": ["httpx>=0.27"], "handler": "handle", "retry_backoff": 120.0,
        "retry_backoff_max": 3600.0, "task_max_age": 5400.0,
        "callback_url": "https://example.com/done",
    }
    FunctionConfig(**config)  # what `hyac deploy` sends


def test_function_keys_follow_the_wire_model() -> None:
    # The agent sets `lock`; `sample` is the CLI's own (`hyac dev` replays it).
    assert set(function_keys()) == set(FunctionConfig.model_fields) - {"lock"} | {"sample"}


def test_discovery_of_files_and_folders(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n', {
        "functions/hello.py": HELLO,
        "functions/report/main.py": "from helpers import x\ndef main(context):\n    return x\n",
        "functions/report/helpers.py": "x = 1\n",
        "functions/report/templates/page.html": "<p>hi</p>\n",
        "functions/report/__pycache__/helpers.cpython-311.pyc": "",
        "functions/report/.secret": "",
        "functions/_shared.py": "",
        "functions/.hidden.py": "",
        "functions/README.md": "docs\n",
        "functions/notes/readme.txt": "not a function\n",
    })
    project = load_project(root)
    assert sorted(project.functions) == ["hello", "report"]
    report = project.functions["report"]
    assert report.entry == "functions/report/main.py"
    assert report.files == [
        "functions/report/helpers.py",
        "functions/report/main.py",
        "functions/report/templates/page.html",
    ]


def test_folder_of_modules_without_main_is_a_warning(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n', {
        "functions/hello.py": HELLO, "functions/lib/util.py": "",
    })
    project = load_project(root)
    assert list(project.functions) == ["hello"]
    assert project.warnings == ["functions/lib/ has no main.py, so it is not a function"]


def test_unknown_function_key_names_key_and_line(tmp_path: Path) -> None:
    root = make(tmp_path, """\
        [project]
        name = "demo"

        [functions.hello]
        memory = "128Mi"

        timout = "10m"
        """)
    with pytest.raises(ManifestError) as caught:
        load_project(root)
    assert caught.value.message.startswith("hyac.toml:7: unknown key 'timout' in [functions.hello]")
    assert "did you mean 'timeout'?" in caught.value.message


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ('[project]\nname = "demo"\nruntme = "python3.11"\n',
         "hyac.toml:3: unknown key 'runtme' in [project]"),
        ('[project]\nname = "demo"\n\n[tool]\nx = 1\n', "hyac.toml:4: unknown key 'tool'"),
        ('[project]\nname = "demo"\n[functions]\nhello = { timout = 3 }\n',
         "hyac.toml:4: unknown key 'timout' in [functions.hello]"),
        ('[project]\nname = "demo"\n[functions.hello]\nenv.A = "1"\nretries = -1\n',
         "hyac.toml:5: retries of function 'hello': must be a whole number >= 0"),
        ('[project]\nname = "demo"\n[functions.hello]\ntimeout = "soon"\n',
         "hyac.toml:4: timeout of function 'hello': invalid timeout: 'soon'"),
        ('[project]\nname = "demo"\n[functions.hello]\nmemory = "lots"\n',
         "hyac.toml:4: memory of function 'hello': invalid memory: 'lots'"),
        ('[project]\nname = "demo"\n[functions.hello]\nenv = { A = 1 }\n',
         "hyac.toml:4: env of function 'hello': value of 'A' must be a string"),
        ('[project]\nname = "demo"\n[functions.hello]\nbackground = "yes"\n',
         "hyac.toml:4: background of function 'hello': must be true or false"),
        ('[project]\nname = "demo"\n[functions.hello]\nhandler = "not valid"\n',
         "hyac.toml:4: handler of function 'hello': 'not valid' is not a Python function name"),
        ('[project]\nname = "demo"\n[functions.hello]\nlock = "x==1"\n',
         "hyac.toml:4: unknown key 'lock' in [functions.hello]"),
        ('[project]\nname = "demo"\n[functions.hello]\nretries = "3"\n',
         "hyac.toml:4: retries of function 'hello': must be a whole number >= 0"),
        ('[project]\nname = "demo"\n[functions.hello]\nretries = true\n',
         "hyac.toml:4: retries of function 'hello': must be a whole number >= 0"),
        ('[project]\nname = "demo"\n[functions.hello]\nruntime = ""\n',
         "hyac.toml:4: runtime of function 'hello': must be a non-empty string"),
        ('[project]\nname = "demo"\n[functions.hello]\nenv = ["A=1"]\n',
         "hyac.toml:4: env of function 'hello': must be a table such as { REGION = \"eu\" }"),
        ('[project]\nname = "demo"\n[functions.hello]\nrequirements = ["httpx", ""]\n',
         "hyac.toml:4: requirements of function 'hello': must be a list of strings such as "
         "[\"httpx>=0.27\"]"),
        ('[project]\nname = "demo"\n[functions.hello]\ncallback_url = "ftp://example.com"\n',
         "hyac.toml:4: callback_url of function 'hello': must be an http:// or https:// URL"),
        ('[project]\nname = "demo"\n[functions.hello]\ntask_max_age = 0\n',
         "hyac.toml:4: task_max_age of function 'hello': invalid task_max_age: 0 must be positive"),
        ('[project]\nname = "demo"\ntenant = "Big Corp"\n', "hyac.toml:3: invalid tenant name"),
        ('[project]\nruntime = "python3.11"\n', "hyac.toml:1: [project] needs a name"),
        ('name = "demo"\n', "hyac.toml:1: unknown key 'name'"),
        ('[functions.hello]\n', "hyac.toml: missing [project] table"),
        ('[project]\nname = "demo"\n[functions."Bad Name"]\n',
         "hyac.toml:3: invalid function name 'Bad Name'"),
    ],
)
def test_manifest_mistakes_name_the_line(tmp_path: Path, manifest: str, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_project(make(tmp_path, manifest))
    assert caught.value.message.startswith(expected), caught.value.message
    assert caught.value.exit_code == 2


def test_toml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\ntenant = \n')
    with pytest.raises(ManifestError) as caught:
        load_project(root)
    assert caught.value.message.startswith("hyac.toml:3: invalid TOML: ")
    assert "\n" not in caught.value.message


def test_function_table_without_source_names_the_missing_file(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n\n[functions.report]\ntimeout = 5\n')
    with pytest.raises(ManifestError) as caught:
        load_project(root)
    assert caught.value.message == (
        "hyac.toml:4: [functions.report] has no source: create functions/report.py "
        "or functions/report/main.py"
    )


def test_bad_function_file_name_is_reported(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n', {"functions/Bad Name.py": HELLO})
    with pytest.raises(InvalidInput) as caught:
        load_project(root)
    expected = "functions/Bad Name.py: invalid function name 'Bad Name'"
    assert caught.value.message.startswith(expected)


def test_function_defined_twice(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n', {
        "functions/hello.py": HELLO, "functions/hello/main.py": HELLO,
    })
    twice = "defined twice: functions/hello.py and functions/hello/main.py"
    with pytest.raises(InvalidInput, match=twice):
        load_project(root)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n', {
        "functions/hello.py": "def main(context):\n    x = 1\n    return x +\n",
    })
    project = load_project(root)
    with pytest.raises(InvalidInput) as caught:
        check_sources(project, list(project.functions.values()))
    assert caught.value.message.startswith("functions/hello.py:3: SyntaxError: ")


def test_compile_errors_beyond_parsing_are_caught(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n', {
        "functions/hello/main.py": "def main(context):\n    return 1\n",
        "functions/hello/util.py": "x = 1\nreturn x\n",
    })
    project = load_project(root)
    expected = r"^functions/hello/util.py:2: SyntaxError: 'return' outside"
    with pytest.raises(InvalidInput, match=expected):
        check_sources(project, list(project.functions.values()))


def test_missing_entry_point_is_reported(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n[functions.hello]\nhandler = "handle"\n')
    project = load_project(root)
    with pytest.raises(InvalidInput, match=r"^functions/hello.py: no top-level 'handle'"):
        check_sources(project, list(project.functions.values()))


def test_entry_point_may_be_imported_or_assigned(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n', {
        "functions/a.py": "from os import getcwd as main\n",
        "functions/b.py": "def _impl(context):\n    return 1\nmain = _impl\n",
        "functions/c.py": (
            "try:\n    pass\nexcept ImportError:\n    pass\nelse:\n    def main(c): ...\n"
        ),
    })
    project = load_project(root)
    check_sources(project, list(project.functions.values()))


def test_select_names(tmp_path: Path) -> None:
    project = load_project(make(tmp_path, '[project]\nname = "demo"\n'))
    assert [f.name for f in project.select(None)] == ["hello"]
    assert [f.name for f in project.select(["hello", "hello"])] == ["hello"]
    with pytest.raises(InvalidInput, match="no function 'nope' in this project"):
        project.select(["nope"])


def test_project_without_functions(tmp_path: Path) -> None:
    project = load_project(make(tmp_path, '[project]\nname = "demo"\n', {}))
    with pytest.raises(InvalidInput, match="no functions in functions/"):
        project.select([])


def test_project_root_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "demo"\n')
    assert find_project_root(root / "functions") == root.resolve()
    assert find_project_root(tmp_path.parent / "elsewhere") is None
    with pytest.raises(InvalidInput, match="no hyac.toml in .* or its parents"):
        require_project_root(tmp_path.parent)


def test_toml_lines() -> None:
    lines = TomlLines(
        '# [functions.x]\n'
        '[project]\n'
        'name = "demo"\n'
        'description = """\n'
        'timeout = 1\n'
        '"""\n'
        '[ functions . "report" ]\n'
        'timeout = 3\n'
        '[functions.report.env]\n'
        'A = "1"\n'
    )
    assert lines.line_of(("project",)) == 2
    assert lines.line_of(("project", "name")) == 3
    assert lines.line_of(("functions", "report")) == 7
    assert lines.line_of(("functions", "report", "timeout")) == 8
    assert lines.line_of(("functions", "report", "env", "A")) == 10
    assert lines.line_of(("functions", "other")) is None
