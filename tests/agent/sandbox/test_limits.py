"""Limits and per-sandbox code directories."""

from __future__ import annotations

from pathlib import Path

from hyac_agent.sandbox.base import fill_code_dir
from hyac_agent.sandbox.limits import ResourceLimits, rlimit_prefix, worker_rlimits


def test_rlimit_prefix_under_cgroups_only_caps_files() -> None:
    args = rlimit_prefix(ResourceLimits(file_bytes=1000), cgroups=True)
    assert args[0] == "prlimit" and "--fsize=1000" in args and args[-1] == "--"
    assert not any(a.startswith("--as=") for a in args)


def test_rlimit_prefix_without_cgroups_caps_memory_processes_cpu() -> None:
    args = rlimit_prefix(ResourceLimits(memory_bytes=100, pids=7), cgroups=False)
    assert any(a.startswith("--as=") for a in args) and "--nproc=7" in args


def test_a_worker_is_given_the_limits_prlimit_would_set() -> None:
    """HYAC_RLIMITS names what the prefix under cgroups sets, value for value."""
    limits = ResourceLimits(file_bytes=1000)
    given = dict(item.split(":") for item in worker_rlimits(limits).split(","))
    prefix = rlimit_prefix(limits, cgroups=True)[1:-1]
    assert {f"--{name}={value}" for name, value in given.items()} == set(prefix)
    assert given == {"fsize": "1000", "core": "0", "nofile": "1024"}


def test_with_memory_keeps_defaults_when_unset() -> None:
    limits = ResourceLimits()
    assert limits.with_memory(None) is limits
    assert limits.with_memory(5).memory_bytes == 5


def test_fill_code_dir_copies_files_and_skips_links(tmp_path: Path) -> None:
    source = tmp_path / "bundle"
    (source / "functions").mkdir(parents=True)
    (source / "functions" / "f.py").write_text("x")
    (source / "functions" / "link").symlink_to("/etc/passwd")
    target = tmp_path / "code"
    target.mkdir()
    fill_code_dir(source, target)
    assert (target / "functions" / "f.py").read_text() == "x"
    assert not (target / "functions" / "link").exists()
