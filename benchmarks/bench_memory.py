"""6. Memory: resident set size of the agent when idle and of one warm worker, against a
bare interpreter (``python -c "import time; time.sleep(5)"``, the same executable).

The agent runs with no pre-started generic sandbox (HYAC_POOL_SIZE=0) so that, after one
invocation, its only child process tree besides its syntax checker (the interpreter that
compiled the deploy's bundle, kept between deploys; its RSS is in a note) is that
function's worker. Under bwrap the worker
is a grandchild (bwrap → bwrap → python): the figures give the interpreter's own RSS and
the sum over the sandbox's process tree (which counts shared pages once per process).
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from benchmarks.harness import (
    ECHO_BODY,
    ECHO_SOURCE,
    Context,
    Figure,
    cmdline,
    comm,
    deploy,
    descendants,
    figure,
    median,
    rss_bytes,
    running_agent,
    stop_process,
)
from hyac_agent.services.syntax import _CHECKER

SETTLE = 1.0


def bare_interpreter_rss(samples: int) -> float:
    values = []
    for _ in range(samples):
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
        try:
            time.sleep(SETTLE)
            values.append(rss_bytes(process.pid))
        finally:
            stop_process(process)
    return median(values)


def is_interpreter(pid: int) -> bool:
    argv = cmdline(pid)
    return comm(pid).startswith("python") or bool(argv and "python" in argv[0].rsplit("/", 1)[-1])


def is_syntax_checker(pid: int) -> bool:
    return cmdline(pid)[-1:] == [_CHECKER]


def run(ctx: Context) -> list[Figure]:
    bare = bare_interpreter_rss(ctx.pick(1, 3))
    with running_agent(ctx, "memory", env={"HYAC_POOL_SIZE": "0"}) as agent:
        deploy(agent, "echo", ECHO_SOURCE)
        time.sleep(SETTLE)
        checkers = [pid for pid in descendants(agent.pid) if is_syntax_checker(pid)]
        others = [pid for pid in descendants(agent.pid) if pid not in checkers]
        if others:
            raise RuntimeError(f"an idle agent with no pool has children: {others}")
        if checkers:
            ctx.notes.append("memory: the agent's syntax checker (kept between deploys), "
                             f"{sum(rss_bytes(pid) for pid in checkers) / 2**20:.1f} MiB, "
                             "is in none of its figures")
        agent_idle = rss_bytes(agent.pid)
        with httpx.Client(timeout=60) as client:
            for _ in range(50):
                client.post(agent.gateway("echo"), content=ECHO_BODY).raise_for_status()
        time.sleep(SETTLE)
        tree = [pid for pid in descendants(agent.pid) if pid not in checkers]
        interpreters = [pid for pid in tree if is_interpreter(pid)]
        if not interpreters:
            raise RuntimeError(f"no worker interpreter among the agent's descendants {tree}")
        worker_tree = sum(rss_bytes(pid) for pid in tree)
        worker_interpreter = max(rss_bytes(pid) for pid in interpreters)
        agent_busy = rss_bytes(agent.pid)
        processes = {pid: comm(pid) for pid in tree}
    name = "bare interpreter (sleep)"
    return [
        figure("memory.agent_idle", "agent RSS, idle", agent_idle, "B", bare, name),
        figure("memory.agent_one_warm", "agent RSS, one warm worker", agent_busy, "B", bare, name),
        figure("memory.worker_interpreter", "warm worker RSS (interpreter)", worker_interpreter, "B",
               bare, name),
        figure("memory.worker_tree", "warm worker RSS (sandbox tree)", worker_tree, "B", bare, name,
               processes=processes),
    ]
