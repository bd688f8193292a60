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
