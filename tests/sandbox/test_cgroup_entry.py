"""A bwrap sandbox's processes are put in its cgroups by the agent once they run
(``CgroupSet.adopt``), before the worker is sent any code: every one of them, those
started before the move and those forked after it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyac_agent.sandbox import SandboxSettings, SandboxSpec
from hyac_agent.sandbox.bubblewrap import BubblewrapBackend
from hyac_agent.sandbox.limits import CgroupManager, CgroupSet, ResourceLimits, cgroup_manager
from hyac_common.errors import SandboxUnavailable

RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _manager() -> CgroupManager:
    manager, why = cgroup_manager()
    if manager is None:
        pytest.skip(f"no cgroups the agent can manage here: {why}")
    return manager


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                children = [int(c) for c in fh.read().split()]
        except OSError:
            continue
        for child in children:
            found += _tree(child)
    return found


def _tree_of_at_least(pid: int, count: int, what: str, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = _tree(pid)
        if len(tree) >= count:
            return tree
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _outside(group: CgroupSet, pids: list[int]) -> list[int]:
    """The pids of ``pids`` missing from any of the group's controllers."""
    missing = []
    for pid in pids:
        for directory in group.dirs.values():
            members = (directory / "cgroup.procs").read_text().split()
            if str(pid) not in members and os.path.exists(f"/proc/{pid}"):
                missing.append(pid)
                break
    return missing


def test_adopt_moves_a_process_tree_and_its_later_children() -> None:
    group = _manager().create(ResourceLimits())
    # Three levels, started before the move; the top one forks again after it.
    script = "sleep 30 & (sleep 30 & wait) & read line; sleep 30 & wait"
    proc = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.PIPE, start_new_session=True)
    try:
        before = _tree_of_at_least(proc.pid, 4, "the tree to be started")
        group.adopt(proc.pid)
        assert _outside(group, before) == []
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        after = _tree_of_at_least(proc.pid, len(before) + 1, "the child forked after the move")
        assert _outside(group, after) == []
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        group.remove()


def test_adopt_passes_over_a_process_that_has_exited() -> None:
    group = _manager().create(ResourceLimits())
    try:
        proc = subprocess.Popen(["/bin/true"])
        proc.wait()
        group.adopt(proc.pid)  # gone: nothing to confine, and no error
        assert group.pids() == []
    finally:
        group.remove()


@pytest.fixture
def backend(tmp_path: Path) -> BubblewrapBackend:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    _manager()
    return BubblewrapBackend(SandboxSettings(run_dir=tmp_path / "run"))


def test_every_process_of_a_sandbox_is_in_its_cgroups(backend: BubblewrapBackend) -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        sandbox = await backend.start(SandboxSpec(runtime=backend.resolve_runtime(RUNTIME)))
        try:
            assert isinstance(sandbox.cgroup, CgroupSet)
            # bwrap, its sandbox's init, and the worker's interpreter (forked after the
            # move, or moved with the rest)
            tree = await asyncio.to_thread(
                _tree_of_at_least, sandbox.process.pid, 3, "the worker's interpreter"
            )
            return tree, _outside(sandbox.cgroup, tree)
        finally:
            await sandbox.kill()

    tree, outside = asyncio.run(scenario())
    assert outside == [], f"processes outside the sandbox's cgroups: {outside} of {tree}"


def test_a_sandbox_that_cannot_enter_its_cgroups_never_runs(
    backend: BubblewrapBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []

    def refused(self: CgroupSet, pid: int) -> None:
        started.append(pid)
        raise PermissionError(13, "Permission denied", "cgroup.procs")

    monkeypatch.setattr(CgroupSet, "adopt", refused)

    async def scenario() -> None:
        await backend.start(SandboxSpec(runtime=backend.resolve_runtime(RUNTIME)))

    with pytest.raises(SandboxUnavailable, match="could not be put in its cgroup"):
        asyncio.run(scenario())
    assert len(started) == 1
    # Killed and reaped before the error came back: its pid is gone.
    assert not os.path.exists(f"/proc/{started[0]}")


def test_without_children_lists_a_sandbox_enters_its_cgroups_by_a_prefix(
    backend: BubblewrapBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kernel without CONFIG_PROC_CHILDREN cannot list a tree: the group is entered
    # before bubblewrap starts, the slower way, and never skipped.
    from hyac_agent.sandbox import bubblewrap

    monkeypatch.setattr(bubblewrap, "can_adopt", lambda: False)

    def never(self: CgroupSet, pid: int) -> None:
        raise AssertionError("adopt needs the children lists")

    monkeypatch.setattr(CgroupSet, "adopt", never)
    test_every_process_of_a_sandbox_is_in_its_cgroups(backend)
