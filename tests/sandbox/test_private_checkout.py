"""A checkout in a private directory (root's home, a 0700 release folder): bubblewrap
still runs as an unprivileged uid, on a root-owned copy of the runtime folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hyac_agent.sandbox import bubblewrap
from hyac_agent.sandbox.base import SandboxSettings
from hyac_agent.sandbox.bubblewrap import BubblewrapBackend

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="PRIVATE CHECKOUT NOT TESTED: needs root and setpriv (util-linux)",
)


def _private_runtime(tmp_path: Path) -> Path:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    source = Path(bubblewrap.__file__).resolve().parents[2] / "runtimes" / "python"
    folder = private / "python"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_a_runtime_folder_out_of_reach_is_copied_where_the_sandbox_uid_reads_it(tmp_path: Path) -> None:
    folder = _private_runtime(tmp_path)
    assert not bubblewrap._accessible_to_others(folder)
    copy = bubblewrap._readable_copy(folder)
    assert copy is not None and copy != folder
    assert copy.parent == Path("/run/hyac-runtimes")
    assert bubblewrap._accessible_to_others(copy)
    assert (copy.parent.stat().st_mode & 0o022) == 0 and copy.parent.stat().st_uid == 0
    def listing(root: Path) -> list[str]:  # bytecode the agent compiles in the copy aside
        return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                      if "__pycache__" not in p.relative_to(root).parts)

    names = listing(folder)
    assert listing(copy) == names
    for name in names:
        if (folder / name).is_file():
            assert (copy / name).read_bytes() == (folder / name).read_bytes()
    # nobody (the sandbox uid) can read the copy, not the original
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "cat"]
    assert subprocess.run([*as_nobody, str(copy / "runtime.toml")], capture_output=True).returncode == 0
    assert subprocess.run([*as_nobody, str(folder / "runtime.toml")], capture_output=True).returncode != 0
    # same content, same copy; changed content, a new one
    bubblewrap._readable_copy.cache_clear()
    assert bubblewrap._readable_copy(folder) == copy
    (folder / "bootstrap.py").write_text((folder / "bootstrap.py").read_text() + "\n# changed\n")
    bubblewrap._readable_copy.cache_clear()
    changed = bubblewrap._readable_copy(folder)
    assert changed is not None and changed != copy
    shutil.rmtree(changed)


def test_the_backend_binds_the_copy_and_drops_privileges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _private_runtime(tmp_path)
    original = bubblewrap.resolve

    def resolve_private(name: str):  # type: ignore[no-untyped-def]
        from dataclasses import replace

        return replace(original(name), folder=folder)

    monkeypatch.setattr(bubblewrap, "resolve", resolve_private)
    backend = BubblewrapBackend(SandboxSettings(run_dir=tmp_path / "run"))
    runtime = backend.resolve_runtime("python3.11")
    assert runtime.folder != folder
    assert str(runtime.folder).startswith("/run/hyac-runtimes/")
    assert backend.drops_privileges(runtime)


def test_a_dependency_environment_in_the_private_data_dir_is_bound_from_a_view(tmp_path: Path) -> None:
    """Dependency environments live in the agent's 0700 data directory: a sandbox with one
    still runs as its own unprivileged uid (without cgroups, as host root it would have
    no process limit and be refused), binding a view of the environment it can reach."""
    from hyac_agent.sandbox.base import SandboxSpec, make_host_dir, new_sandbox_id

    private = tmp_path / "data"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    backend = BubblewrapBackend(SandboxSettings(run_dir=tmp_path / "run"))
    runtime = backend.resolve_runtime(f"python{sys.version_info.major}.{sys.version_info.minor}")
    spec = SandboxSpec(runtime=runtime, deps_dir=private / "deps" / "envs" / "0123abcd")
    env = spec.deps_source  # the folder of the environment that is mounted
    assert env is not None
    (env / "pkg").mkdir(parents=True)
    (env / "pkg" / "__init__.py").write_text("VALUE = 42\n")
    (env / "alias.py").symlink_to("pkg/__init__.py")
    for path in [private / "deps", private / "deps" / "envs", spec.deps_dir, env, env / "pkg"]:
        os.chmod(path, 0o755)
    os.chmod(env / "pkg" / "__init__.py", 0o644)
    assert not bubblewrap._accessible_to_others(env)
    host_dir = make_host_dir(backend.sandbox_root(spec), new_sandbox_id())
    channel = os.open(os.devnull, os.O_RDONLY)
    launch = backend.prepare(spec, channel, host_dir)
    try:
        assert launch.host_uid is not None  # bubblewrap runs as the sandbox's own uid
        assert f"--reuid={launch.host_uid}" in launch.argv
        bound = launch.argv[launch.argv.index("/deps") - 1]
        view = Path(bound)
        assert view != env and bubblewrap._accessible_to_others(view)
        assert (view / "pkg" / "__init__.py").read_text() == "VALUE = 42\n"
        assert os.readlink(view / "alias.py") == "pkg/__init__.py"
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "cat"]
        assert subprocess.run([*as_nobody, str(view / "alias.py")], capture_output=True).returncode == 0
        assert subprocess.run([*as_nobody, str(env / "alias.py")], capture_output=True).returncode != 0
    finally:
        launch.close()
        backend.abandon(launch)
        os.close(channel)
