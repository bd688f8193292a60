"""Each bubblewrap sandbox runs as a host uid of its own (when the agent is root)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from hyac_agent.sandbox.base import SandboxSettings
from hyac_agent.sandbox.uids import UidPool
from hyac_common.errors import SandboxUnavailable
from tests.sandbox.conftest import Target

MARK = "import os\ndef main(context):\n    open('/tmp/' + context.request.query['mark'], 'w').close()\n    return os.getuid()\n"


def host_uid_of_sandbox_with(mark: str) -> int:
    """The host uid of the process whose sandbox has /tmp/MARK (seen through /proc as root)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        proc = Path("/proc") / pid
        try:
            if not (proc / "root" / "tmp" / mark).exists():
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    raise AssertionError(f"no process has /tmp/{mark}")


def test_sandboxes_of_two_tenants_have_their_own_host_uids(session_target: Target) -> None:
    if session_target.backend != "bwrap":
        pytest.skip(f"host uids per sandbox are bubblewrap's, not {session_target.backend}'s")
    if os.geteuid() != 0:
        pytest.skip("host uids per sandbox: bubblewrap needs the agent to run as root")
    uids = []
    for tenant in ("uid-a", "uid-b"):
        mark = "mark-" + secrets.token_hex(6)
        seen = session_target.value(MARK, tenant=tenant, query={"mark": mark})
        assert seen == 1000  # inside: the sandbox's uid; outside:
        uids.append(host_uid_of_sandbox_with(mark))
    first, count = SandboxSettings(run_dir=Path("/nonexistent")).sandbox_uids
    assert all(first <= uid < first + count for uid in uids), uids
    assert uids[0] != uids[1], uids


def test_uid_pool_hands_each_uid_to_one_holder() -> None:
    pool = UidPool(5000, 2)
    a, b = pool.take(), pool.take()
    assert {a, b} == {5000, 5001}
    with pytest.raises(SandboxUnavailable):
        pool.take()
    pool.give_back(a)
    pool.give_back(a)  # twice: still one holder at a time
    assert pool.take() == a
    with pytest.raises(SandboxUnavailable):
        pool.take()


def test_a_uid_another_agent_holds_is_passed_over(tmp_path: Path) -> None:
    """Every agent on a host draws from the same range: a uid is held host-wide."""
    locks = tmp_path / "locks"
    agent_a, agent_b = UidPool(5000, 2, lock_dir=locks), UidPool(5000, 2, lock_dir=locks)
    assert agent_a.take() == 5000
    assert agent_b.take() == 5001  # 5000 runs a sandbox of the other agent
    with pytest.raises(SandboxUnavailable):
        agent_b.take()
    agent_a.give_back(5000)
    assert agent_b.take() == 5000  # tried again once the other agent let it go
    assert oct((locks).stat().st_mode & 0o777) == oct(0o700)


HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from hyac_agent.sandbox.uids import UidPool
pool = UidPool(7000, 3, lock_dir=Path(sys.argv[1]))
print(pool.take(), flush=True)
time.sleep(60)
"""


def test_a_killed_agent_leaves_no_uid_held(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    locks = tmp_path / "locks"
    repo = str(Path(__file__).resolve().parents[2])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(locks), repo],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "7000"
        here = UidPool(7000, 3, lock_dir=locks)
        assert here.take() == 7001
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=20)
        assert {here.take(), here.take()} == {7002, 7000}  # the lock went with its holder
    finally:
        holder.kill()
        holder.wait(timeout=20)
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_lock_dir_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o777)
    locks.chmod(0o777)
    pool = UidPool(5000, 1, lock_dir=locks)  # warns, and holds uids for itself only
    assert pool.take() == 5000
    assert not any(locks.iterdir())


def test_two_agents_on_one_host_never_share_a_sandbox_uid(tmp_path: Path) -> None:
    import shutil

    from tests.conftest import start_agent

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    if os.geteuid() != 0:
        pytest.skip("host uids per sandbox: bubblewrap needs the agent to run as root")
    agents = [start_agent(tmp_path / name / "data", "--sandbox", "bwrap") for name in ("a", "b")]
    try:
        uids = []
        for agent in agents:
            mark = "mark-" + secrets.token_hex(6)
            agent.deploy("who", MARK)
            answer = agent.invoke("who", query={"mark": mark})
            assert answer.status_code == 200, answer.text
            uids.append(host_uid_of_sandbox_with(mark))  # both workers are alive now
        assert uids[0] != uids[1], uids
    finally:
        for agent in agents:
            agent.kill()
