"""Limits where the agent cannot write cgroups (HYAC_CGROUPS=off makes it behave as in a
container given no cgroup delegation): the rlimit fallback must bind as cgroups do.

The limit attacks of the escape suite run here unchanged, against a bubblewrap agent
without cgroups; then a fork bomb that holds its processes while another tenant forks.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.sandbox import test_escapes as escapes
from tests.sandbox.conftest import Target

LIMIT_ATTACKS: list[Callable[[Target], None]] = [
    escapes.test_fork_bomb,
    escapes.test_memory_bomb,
    escapes.test_one_gib_return_value,
    escapes.test_write_outside_tmp,
    escapes.test_fill_tmp_past_its_cap,
    escapes.test_cpu_spin_past_the_timeout,
]


@pytest.mark.parametrize("attack", LIMIT_ATTACKS, ids=lambda f: f.__name__.removeprefix("test_"))
def test_limit_attack_without_cgroups(rlimit_target: Target, attack: Callable[[Target], None]) -> None:
    attack(rlimit_target)


def test_the_agent_says_it_runs_on_rlimits(rlimit_target: Target) -> None:
    with rlimit_target.agent.client() as client:
        isolation = client.get("/v1/agent").json()["extra"]["isolation"]
    assert isolation["limits"].startswith("rlimits"), isolation
    assert "HYAC_CGROUPS=off" in isolation["limits"]


def test_memory_quota_binds_below_the_address_space_slack(rlimit_target: Target) -> None:
    """200 MiB under a 64 MiB quota: the address-space cap alone (quota + 512 MiB) let
    this through; the private-memory cap does not."""
    source = (
        "def main(context):\n"
        "    hog = bytearray(200 << 20)\n"
        "    hog[::4096] = b'x' * len(hog[::4096])\n"
        "    return len(hog)\n"
    )
    answer = rlimit_target.run(source, memory=64 * 1024 * 1024)
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["code"] == "out_of_memory"
    assert any("out_of_memory" in line for line in rlimit_target.system_log())


FORK_A_FEW = """
import os
def main(context):
    pids = []
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    return len(pids)
"""


def test_fork_bomb_leaves_other_tenants_their_processes(rlimit_target: Target) -> None:
    """RLIMIT_NPROC counts per sandbox (each has its own user namespace), so a bomb that
    holds its whole quota does not stop another tenant's sandbox from forking."""
    victim = rlimit_target.name("victim")
    rlimit_target.agent.deploy(victim, FORK_A_FEW, tenant="victim")
    bomb = rlimit_target.value(escapes.fork_bomb(20), tenant="bomber", timeout=20)
    assert bomb["children"] > 0 and bomb["error"] is not None, bomb  # it ran, and was stopped
    assert bomb["children"] < 200
    answer = rlimit_target.agent.invoke(victim, tenant="victim")
    assert answer.status_code == 200 and answer.json()["ok"], answer.text


def test_rlimits_are_refused_where_they_would_not_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    from hyac_agent.sandbox import limits

    assert limits.rlimits_unenforceable(65534) is None  # this kernel: counted per sandbox
    root = limits.rlimits_unenforceable(0)
    assert root is not None and "host root" in root
    monkeypatch.setattr(limits, "_kernel_version", lambda: (5, 10))
    old = limits.rlimits_unenforceable(1000)
    assert old is not None and "per host uid" in old
    assert limits.rlimits_unenforceable(2_000_000_000, uid_per_sandbox=True) is None


def test_bwrap_refuses_to_start_without_binding_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cgroups and sandboxes that would run as host root: the backend is unavailable,
    and says why (the reason `hyac-agent doctor` prints)."""
    from hyac_agent.sandbox import bubblewrap, limits

    monkeypatch.setattr(bubblewrap, "cgroup_manager", lambda: (None, "cgroups disabled by HYAC_CGROUPS=off"))
    monkeypatch.setattr(bubblewrap, "_drop_to", lambda uid: [])
    monkeypatch.setattr(bubblewrap.os, "geteuid", lambda: 0)
    reason = bubblewrap._limits_error()
    assert reason is not None and "no limits would bind" in reason and "HYAC_CGROUPS=off" in reason
    monkeypatch.setattr(limits, "_kernel_version", lambda: (6, 1))
    assert bubblewrap._limits_error(host_uid=2_000_000_000, uid_per_sandbox=True) is None


JAVA_HEAP_BOMB = """import java.util.ArrayList;
public class Hog {
    public static Object handle(Context context) {
        ArrayList<byte[]> kept = new ArrayList<>();
        for (int i = 0; i < 10000; i++) kept.add(new byte[1 << 20]);
        return kept.size();
    }
}
"""


def test_java_runs_under_rlimits_and_its_heap_stays_in_the_quota(rlimit_target: Target) -> None:
    """The JVM reserves address space it never touches (runtime.toml's [rlimits]
    reserved_mb): above the backstop, it starts; its heap still ends inside the quota."""
    from tests.runtime_families.conftest import deploy_files, runtime_missing

    missing = runtime_missing("java17")
    if missing:
        pytest.skip(missing)
    hello = "public class Hi { public static Object handle(Context c) { return \"hi\"; } }\n"
    for name, source, memory in (("hi", hello, 128), ("hog", JAVA_HEAP_BOMB, 128)):
        made = deploy_files(rlimit_target.agent, name, {f"functions/{name.title()}.java": source},
                            runtime="java17", memory=memory << 20)
        assert made.status_code in (200, 201), made.text
    answer = rlimit_target.agent.invoke("hi")
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    hog = rlimit_target.agent.invoke("hog")
    assert hog.status_code == 502 and hog.json()["error"]["code"] == "out_of_memory", hog.text


def test_deno_is_refused_with_the_reason_where_no_rlimit_holds_its_memory(rlimit_target: Target) -> None:
    """V8 reserves tens of GiB at start: without cgroups deno says why it cannot start,
    in one line, instead of crashing in V8 or running without a memory limit."""
    from hyac_agent import runtimes
    from hyac_common.errors import InvalidInput
    from tests.runtime_families.conftest import deploy_files

    try:
        runtimes.resolve("deno")
    except InvalidInput as exc:
        pytest.skip(f"{exc.message} (CI: scripts/setup-runtimes.sh installs it)")
    source = "export default function main() { return 'hi'; }\n"
    made = deploy_files(rlimit_target.agent, "denofn", {"functions/denofn.ts": source}, runtime="deno")
    assert made.status_code in (200, 201), made.text
    answer = rlimit_target.agent.invoke("denofn")
    assert answer.status_code == 503, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("the deno sandbox cannot start: its memory limit needs cgroups"), message
    assert "HYAC_CGROUPS=off" in message and "\n" not in message



SIXTEEN_THREADS = """
import threading, time
def main(context):
    threads = [threading.Thread(target=time.sleep, args=(0.05,)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return threading.stack_size()
"""
CONCURRENT = "import time\ndef main(context):\n    time.sleep(0.3)\n    return 'ok'\n"


def test_threads_fit_in_the_private_memory_cap(rlimit_target: Target) -> None:
    """RLIMIT_DATA counts each thread's whole stack reservation, 8 MiB by default: under
    a 128 MiB quota the thirteenth thread could not start. The worker's pool runs up to
    16 threads, so 16 requests at once left some waiting for their timeout (the gateway
    benchmark answered 504 after 30 s on such hosts). Threads get 2 MiB stacks there."""
    assert rlimit_target.value(SIXTEEN_THREADS, memory=128 * 1024 * 1024) == 2 * 1024 * 1024
    import concurrent.futures

    name = rlimit_target.name("concurrent")
    rlimit_target.agent.deploy(name, CONCURRENT, memory=128 * 1024 * 1024, timeout=8)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: rlimit_target.agent.invoke(name), range(16)))
    assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers if a.status_code != 200]
