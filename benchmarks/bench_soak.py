"""Soak: a mixed load against one agent for N minutes, to see what a long run does to it.

C connections (default 16) each run operations one after another, in a fixed mix: sync
invokes through the gateway, log reads, background tasks, invokes that hit the function's
timeout (a 504 ``timeout`` is their expected answer), tasks cancelled right after they are
queued, and deploys of a function whose source changes every time. Everything goes to
127.0.0.1; the agent is pinned to one CPU and this process to the other, as in the rest
of the suite.

Reported per window (10 s; 1 s in ``--quick``): operations per second, sync-invoke p50 and
the answers that were not the expected ones, by error code; and the agent's RSS and open
file descriptors. After the load, every background task must end ``succeeded`` and every
cancelled one ``cancelled``.

The baseline is the run's own first minute (its first third, when the run is shorter than
three minutes): throughput of the last period of the same length against it, and RSS and
open fds at the end against their values when the first minute ended (after warm-up). A
leak shows as growth; the verdict line says ``steady`` when there were no unexpected
answers, throughput kept ≥ 0.8× and RSS grew < 10 % and fds by at most 10 % + 8.

    .venv/bin/python -m benchmarks.bench_soak [--minutes M] [--connections C] [--json PATH]
    .venv/bin/python -m benchmarks.bench_soak --quick      # a few seconds: does it run?
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (  # noqa: E402
    ECHO_BODY,
    ECHO_SOURCE,
    Agent,
    Context,
    Figure,
    deploy,
    deploy_body,
    descendants,
    figure,
    median,
    plan_cpus,
    rss_bytes,
    running_agent,
)

#: the functions under load: name → (source, settings)
FUNCTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "echo": (ECHO_SOURCE, {}),
    "overrun": ("import time\n\ndef main(context):\n    time.sleep(3)\n", {"timeout": 1}),
    "job": ("import time\n\ndef main(context):\n    time.sleep(0.05)\n    return 'done'\n",
            {"background": True}),
    "hold": ("import time\n\ndef main(context):\n    time.sleep(30)\n", {"background": True}),
    "churn": ("def main(context):\n    return 0\n", {}),
}
#: operation → weight in the mix (out of 100)
MIX = {"invoke": 62, "logs": 10, "task": 12, "cancel": 6, "timeout": 4, "deploy": 6}
MIN_THROUGHPUT, MAX_RSS_GROWTH, MAX_FD_GROWTH, FD_SLACK = 0.8, 1.10, 1.10, 8
#: the longest warm-up: after it, the load is counted whichever operations have finished
WARM_UP_CAP = 120.0


@dataclass
class Done:
    at: float  # seconds since the load started
    op: str
    outcome: str  # "ok", or the error code of an answer that was not the expected one
    latency: float


@dataclass
class Sample:
    at: float
    rss: int
    fds: int
    processes: int  # the agent's descendants: sandboxes and their workers
    cpu: float = 0.0  # seconds of CPU the agent process has used so far (not its sandboxes)


@dataclass
class Soak:
    agent: Agent
    client: httpx.AsyncClient
    started: float = field(default_factory=time.perf_counter)
    done: list[Done] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)  # background tasks to check at the end
    deploys: int = 0
    dropped: list[dict[str, Any]] = field(default_factory=list)  # requests with no answer

    def now(self) -> float:
        return time.perf_counter() - self.started

    async def run(self, op: str) -> None:
        began = time.perf_counter()
        try:
            outcome = await OPERATIONS[op](self)
        except httpx.HTTPError as exc:
            # No answer at all: the connection was dropped.
            outcome = type(exc).__name__
            self.dropped.append({"op": op, "at": round(self.now(), 3), "error": repr(exc),
                                 "after_s": round(time.perf_counter() - began, 3),
                                 "wall": round(time.time(), 3)})
        self.done.append(Done(self.now(), op, outcome, time.perf_counter() - began))

    # the operations: each answers "ok" or the code of what it got instead -------------

    async def invoke(self) -> str:
        return outcome(await self.client.post(self.agent.gateway("echo"), content=ECHO_BODY))

    async def logs(self) -> str:
        return outcome(await self.client.get("/v1/logs", params={"function": "echo", "limit": 50}))

    async def task(self) -> str:
        response = await self.client.post("/v1/functions/job/invoke", params={"mode": "async"},
                                          json={})
        if response.status_code == 202:
            self.tasks.append(response.json()["task_id"])
        return outcome(response, expected=202)

    async def cancel(self) -> str:
        response = await self.client.post("/v1/functions/hold/invoke", params={"mode": "async"},
                                          json={})
        if response.status_code != 202:
            return outcome(response, expected=202)
        task_id = response.json()["task_id"]
        response = await self.client.post(f"/v1/tasks/{task_id}/cancel")
        if response.status_code == 200 and response.json()["status"] != "cancelled":
            return f"cancel_left_it_{response.json()['status']}"
        return outcome(response)

    async def timeout(self) -> str:
        return outcome(await self.client.post(self.agent.gateway("overrun"), content=b"{}"),
                       expected=504, code="timeout")

    async def deploy(self) -> str:
        self.deploys += 1
        source = f"def main(context):\n    return {self.deploys}\n"
        return outcome(await self.client.put("/v1/functions/churn",
                                             json=deploy_body("churn", source)), expected=(200, 201))


OPERATIONS: dict[str, Callable[[Soak], Awaitable[str]]] = {
    name: getattr(Soak, name) for name in MIX
}


def outcome(response: httpx.Response, expected: int | tuple[int, ...] = 200,
            code: str | None = None) -> str:
    """"ok" for the expected answer, else the error code the agent gave (or the status)."""
    given = None
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        given = response.json()["error"]["code"]
    statuses = expected if isinstance(expected, tuple) else (expected,)
    if response.status_code in statuses and given == code:
        return "ok"
    return given or f"http_{response.status_code}"


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def sample(agent: Agent, at: float) -> Sample:
    return Sample(at, rss_bytes(agent.pid), open_fds(agent.pid), len(descendants(agent.pid)),
                  cpu_seconds(agent.pid))


async def load(agent: Agent, seconds: float, connections: int, window: float,
               mix: dict[str, int], seed: int) -> tuple[Soak, list[Sample]]:
    """The mix for ``seconds``, after a warm-up of the same load that is not counted: at
    least a window, and until every kind of operation has finished once (the pool starts
    its sandboxes then; a loaded host can take longer than a window for that)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with agent.async_client(timeout=60, limits=limits) as client:
        soak = Soak(agent, client, started=time.perf_counter() + WARM_UP_CAP)
        samples: list[Sample] = []
        counting = asyncio.Event()

        async def warm_up() -> None:
            began = time.perf_counter()
            while time.perf_counter() - began < WARM_UP_CAP:
                if time.perf_counter() - began >= window and set(mix) <= {d.op for d in soak.done}:
                    break
                await asyncio.sleep(0.05)
            soak.started = time.perf_counter()
            counting.set()

        async def connection(number: int) -> None:
            rng = random.Random(seed * 1000 + number)
            ops = [op for op, weight in mix.items() for _ in range(weight)]
            while soak.now() < seconds:
                await soak.run(rng.choice(ops))

        async def watch() -> None:
            await counting.wait()
            while soak.now() < seconds:
                samples.append(sample(agent, soak.now()))
                await asyncio.sleep(window - soak.now() % window)

        warming = asyncio.create_task(warm_up())
        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(connection(n) for n in range(connections)))
        await warming
        watcher.cancel()
        samples.append(sample(agent, soak.now()))
        soak.done = [d for d in soak.done if d.at >= 0]  # not the warm-up's
        soak.dropped = [d for d in soak.dropped if d["at"] >= 0]
        await settle_tasks(soak)
    return soak, samples


async def settle_tasks(soak: Soak, patience: float = 120.0) -> None:
    """Wait for the background tasks to end, then count each one that did not succeed."""
    deadline = time.monotonic() + patience
    for status in ("queued", "running"):
        while (await soak.client.get("/v1/tasks", params={"function": "job", "status": status})).json():
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    gate = asyncio.Semaphore(8)

    async def check(task_id: str) -> None:
        async with gate:
            info = (await soak.client.get(f"/v1/tasks/{task_id}")).json()
        if info.get("status") != "succeeded":
            code = (info.get("error") or {}).get("code") or info.get("status", "unknown")
            soak.done.append(Done(soak.now(), "task_result", f"task_{code}", 0.0))

    await asyncio.gather(*(check(t) for t in soak.tasks))


# report ----------------------------------------------------------------------------------


def windows(soak: Soak, samples: list[Sample], seconds: float, window: float) -> list[dict[str, Any]]:
    rows = []
    edges = [i * window for i in range(int(seconds // window) + 1)]
    if edges[-1] < seconds:
        edges.append(seconds)
    for start, end in zip(edges, edges[1:], strict=False):
        inside = [d for d in soak.done if start <= d.at < end and d.op != "task_result"]
        invokes = [d.latency for d in inside if d.op == "invoke" and d.outcome == "ok"]
        last = max((s for s in samples if s.at <= end + window / 2), key=lambda s: s.at)
        before = at_time(samples, start)
        after = min((s for s in samples if s.at > before.at), key=lambda s: abs(s.at - end),
                    default=None)
        rows.append({
            "start": round(start, 2), "end": round(end, 2),
            "ops_per_s": len(inside) / (end - start),
            "by_op": dict(Counter(d.op for d in inside)),
            "invoke_p50_ms": median(invokes) * 1000 if invokes else None,
            "errors": dict(Counter(d.outcome for d in inside if d.outcome != "ok")),
            "rss": last.rss, "fds": last.fds, "processes": last.processes,
            # what an operation costs the agent itself: flat while ops/s falls means the
            # machine (other load on the agent's CPU) slowed it, not the agent
            "agent_cpu_ms_per_op": None if after is None else
            1000 * cpu_per_op(soak, samples, before.at, after.at) or None,
        })
    return rows


def rate(soak: Soak, start: float, end: float) -> float:
    return sum(1 for d in soak.done if start <= d.at < end and d.op != "task_result") / (end - start)


def cpu_per_op(soak: Soak, samples: list[Sample], start: float, end: float) -> float:
    """Seconds of the agent's CPU per operation between ``start`` and ``end``."""
    ops = rate(soak, start, end) * (end - start)
    return (at_time(samples, end).cpu - at_time(samples, start).cpu) / ops if ops else 0.0


def at_time(samples: list[Sample], when: float) -> Sample:
    return min(samples, key=lambda s: abs(s.at - when))


def verdict(soak: Soak, samples: list[Sample], seconds: float) -> tuple[list[Figure], str, dict[str, int]]:
    first = 60.0 if seconds >= 180 else seconds / 3
    baseline = f"the run's first {first:g} s"
    start, end = at_time(samples, first), samples[-1]
    figures = [
        figure("soak.throughput", f"operations/s, last {first:g} s", rate(soak, seconds - first, seconds),
               "req/s", rate(soak, 0, first), baseline, at_least=MIN_THROUGHPUT),
        figure("soak.agent_rss", "agent RSS at the end", end.rss, "B", start.rss,
               f"RSS after {first:g} s", at_most=MAX_RSS_GROWTH),
        figure("soak.agent_fds", "agent open fds at the end", end.fds, "fds", start.fds,
               f"fds after {first:g} s",
               at_most=round(MAX_FD_GROWTH + FD_SLACK / max(start.fds, 1), 2)),
    ]
    errors = dict(Counter(d.outcome for d in soak.done if d.outcome != "ok"))
    steady = not errors and all(f.met for f in figures)
    # No target: it tells a slower agent from a busier machine when throughput falls.
    figures.append(figure(
        "soak.agent_cpu_per_op", f"agent CPU per operation, last {first:g} s",
        cpu_per_op(soak, samples, seconds - first, seconds) * 1000, "ms",
        cpu_per_op(soak, samples, 0, first) * 1000, baseline,
    ))
    words = [
        f"{sum(errors.values())} unexpected answers" + (f" {errors}" if errors else ""),
        f"throughput {figures[0].ratio:.2f}× of the first {first:g} s "
        f"(agent CPU per operation {figures[3].ratio:.2f}×)",
        f"RSS {100 * (figures[1].ratio - 1):+.1f} %",
        f"open fds {end.fds - start.fds:+d}",
    ]
    return figures, f"verdict: {'steady' if steady else 'DRIFT'} — " + ", ".join(words), errors


def print_windows(rows: list[dict[str, Any]]) -> None:
    print(f"{'window':>13} {'ops/s':>7} {'invoke p50':>11} {'CPU/op':>9} {'RSS':>10} {'fds':>5} "
          f"{'procs':>5}  errors")
    for row in rows:
        p50 = f"{row['invoke_p50_ms']:.1f} ms" if row["invoke_p50_ms"] is not None else "—"
        cpu = row["agent_cpu_ms_per_op"]
        per_op = f"{cpu:.1f} ms" if cpu is not None else "—"
        errors = ", ".join(f"{k} {v}" for k, v in sorted(row["errors"].items())) or "—"
        print(f"{row['start']:>5.0f}–{row['end']:<5.0f}s {row['ops_per_s']:>7.1f} {p50:>11} "
              f"{per_op:>9} {row['rss'] / 2**20:>6.1f} MiB {row['fds']:>5} {row['processes']:>5}  "
              f"{errors}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long the load runs (default 1)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--quick", action="store_true",
                        help="6 seconds in windows of 1 s: only shows that the soak runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--log", type=Path, metavar="PATH", help="keep the agent's log there")
    parser.add_argument("--sandbox", default="bwrap", help="as HYAC_SANDBOX (default: bwrap)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the operation mix")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(MIX), metavar="OP",
                        help=f"leave an operation out of the mix ({', '.join(MIX)}); repeatable")
    args = parser.parse_args(argv)
    mix = {op: weight for op, weight in MIX.items() if op not in args.skip}
    if not mix:
        parser.error("every operation was skipped")
    seconds, window = (6.0, 1.0) if args.quick else (args.minutes * 60, 10.0)
    if seconds < 3 * window:
        parser.error(f"--minutes {args.minutes:g} is too short for windows of {window:g} s")

    from benchmarks.run import machine, print_table

    sut_cpus, load_cpus, pinning = plan_cpus()
    machine_info = machine()  # before this process is pinned
    os.sched_setaffinity(0, load_cpus)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with tempfile.TemporaryDirectory(prefix="hyac-soak-") as tmp:
        ctx = Context(args.quick, Path(tmp), sut_cpus, load_cpus, "python", sandbox=args.sandbox)
        with running_agent(ctx, "soak") as agent:
            for name, (source, settings) in FUNCTIONS.items():
                deploy(agent, name, source, **settings)
            print(f"soak: {seconds:g} s, {args.connections} connections, mix {mix} ({pinning})",
                  file=sys.stderr, flush=True)
            soak, samples = asyncio.run(load(agent, seconds, args.connections, window, mix,
                                             args.seed))
            log_tail = agent.log_tail(60)
            if args.log:
                shutil.copyfile(agent.log_path, args.log)
    rows = windows(soak, samples, seconds, window)
    figures, line, errors = verdict(soak, samples, seconds)
    by_op: dict[str, dict[str, int]] = {}
    for d in soak.done:
        if d.outcome != "ok":
            by_op.setdefault(d.op, {}).setdefault(d.outcome, 0)
            by_op[d.op][d.outcome] += 1
    print_windows(rows)
    print_table(figures, {}, f"Hyac soak ({seconds:g} s, {args.connections} connections)",
                [pinning, f"sandbox: {args.sandbox}",
                 f"operations: {dict(Counter(d.op for d in soak.done if d.op != 'task_result'))}",
                 f"background tasks checked: {len(soak.tasks)}"])
    if by_op:
        print(f"unexpected answers by operation: {by_op}; the agent's log ends:\n{log_tail}")
    print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "mode": "quick" if args.quick else "soak", "started_at": started_at,
            "seconds": seconds, "connections": args.connections, "mix": mix,
            "machine": machine_info,
            "figures": {f.key: f.as_json() for f in figures}, "windows": rows,
            "errors": errors, "errors_by_op": by_op, "tasks_checked": len(soak.tasks),
            "dropped": soak.dropped, "verdict": line,
            **({"agent_log_tail": log_tail} if by_op else {}),
        }, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
