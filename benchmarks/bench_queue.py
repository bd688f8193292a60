"""8. Background tasks: Hyac's embedded queue against Celery on Redis, in the same run.

Hyac: no-op background tasks submitted as async invokes over the API
(``POST /v1/functions/noop/invoke?mode=async``) by 8 client threads over keep-alive
connections, then ``GET /v1/tasks`` until every one has succeeded. Celery: the same
no-op as a Celery task (``benchmarks/celery_noop.py``), a prefork worker of 2 processes
started by this benchmark against the local Redis, ``.delay()`` from 8 client threads
then ``.get()`` of every result. Both are pinned to the system-under-test CPU and run
in alternation, round after round.

Figures: enqueue rate (all submissions answered), end-to-end rate (first submission to
the last success: for Hyac as the store dates it, polled seldom so that looking does
not slow it down; for Celery when the last ``.get()`` returned), and the per-task
platform overhead: one task at a time, from its creation to its success as the store
dates them (the function itself does nothing), against one ``.delay().get()`` round
trip of Celery.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.harness import (
    REPO,
    Agent,
    Context,
    Figure,
    cpu_seconds,
    deploy,
    descendants,
    figure,
    median,
    percentile,
    pinned,
    running_agent,
    stop_process,
)

NOOP_SOURCE = "def main(context):\n    return None\n"
CLIENT_THREADS = 8
REDIS_URL = "redis://127.0.0.1:6379/13"
#: both Celery workers, the baseline's and ``hyac-agent worker``, log at this level: no
#: line per task on either side
CELERY_LOGLEVEL = "WARNING"


@dataclass
class Burst:
    tasks: int
    enqueue_s: float  # first submission to the last one answered
    end_to_end_s: float  # first submission to the last success seen
    #: CPU seconds the system under test used over the burst, by part (agent, worker...)
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def enqueue_rate(self) -> float:
        return self.tasks / self.enqueue_s

    @property
    def end_to_end_rate(self) -> float:
        return self.tasks / self.end_to_end_s


#: a part of what is measured and the pids it runs as right now
Parts = dict[str, Callable[[], list[int]]]


def metered(parts: Parts, run: Callable[[], Burst]) -> Burst:
    """``run()``, with the CPU time each part used over it. A process that ends during
    the run loses what it used (its parent reaps it); the sandboxes and workers here
    live for the whole burst."""
    before = {name: cpu_seconds(pids()) for name, pids in parts.items()}
    burst = run()
    burst.cpu_s = {name: cpu_seconds(pids()) - before[name] for name, pids in parts.items()}
    return burst


def cpu_per_task(bursts: list[Burst]) -> dict[str, float]:
    """Median CPU milliseconds per task of each part, and their sum as ``total``."""
    shares = [{name: used / b.tasks * 1000 for name, used in b.cpu_s.items()} for b in bursts]
    parts = {name: round(median([s[name] for s in shares]), 2) for name in shares[0]} if shares else {}
    if parts:
        parts["total"] = round(median([sum(s.values()) for s in shares]), 2)
    return parts


def in_threads(count: int, threads: int, submit: Callable[[Any], Any], make: Callable[[], Any],
               close: Callable[[Any], None]) -> list[Any]:
    """``count`` calls of ``submit(client)`` spread over ``threads`` threads, each with
    its own client; their answers, in no particular order."""
    answers: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(share: int) -> None:
        client = make()
        try:
            mine = [submit(client) for _ in range(share)]
        except BaseException as exc:  # reported to the caller
            with lock:
                errors.append(exc)
            return
        finally:
            close(client)
        with lock:
            answers.extend(mine)

    shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    pool = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    return answers


# Hyac --------------------------------------------------------------------------------


class HyacTasks:
    def __init__(self, agent: Agent, function: str) -> None:
        self.agent = agent
        self.function = function
        parts = urlsplit(agent.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {**agent.headers, "Content-Type": "application/json"}

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def call(self, connection: http.client.HTTPConnection, method: str, path: str,
             body: bytes | None = None) -> Any:
        connection.request(method, path, body=body, headers=self.headers)
        response = connection.getresponse()
        data = response.read()
        if response.status >= 300 and response.status != 202:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data)

    def submit(self, connection: http.client.HTTPConnection) -> str:
        answer = self.call(connection, "POST", f"/v1/functions/{self.function}/invoke?mode=async",
                           b"{}")
        return str(answer["task_id"])

    def statuses(self, connection: http.client.HTTPConnection, limit: int) -> list[dict[str, Any]]:
        return list(self.call(connection, "GET",
                              f"/v1/tasks?function={self.function}&limit={limit}"))

    def burst(self, count: int) -> Burst:
        started, wall = time.perf_counter(), time.time()
        ids = set(in_threads(count, CLIENT_THREADS, self.submit, self.connect,
                             lambda c: c.close()))
        enqueued = time.perf_counter() - started
        with contextlib.closing(self.connect()) as connection:
            while True:
                # Seldom (every 0.5 s: each look lists the whole burst), and newest first
                # (this burst's tasks are the last ``count``): the looking must not slow
                # down what it looks at. The end is the last
                # success as the store dates it, not when it was seen.
                seen = {t["id"]: t for t in self.statuses(connection, count)}
                if all(seen.get(i, {}).get("status") == "succeeded" for i in ids):
                    break
                failed = [i for i in ids if seen.get(i, {}).get("status") in ("dead", "cancelled")]
                if failed:
                    raise RuntimeError(f"{len(failed)} tasks did not succeed: {seen[failed[0]]}")
                time.sleep(0.5)
        last = max(seen[i]["finished_at"] for i in ids)
        return Burst(count, enqueued, last - wall)

    def overhead(self, count: int) -> list[float]:
        """Creation to success as the store dates them, one task at a time."""
        samples = []
        with contextlib.closing(self.connect()) as connection:
            for _ in range(count):
                task_id = self.submit(connection)
                while True:
                    time.sleep(0.02)
                    info = self.call(connection, "GET", f"/v1/tasks/{task_id}")
                    if info["status"] == "succeeded":
                        break
                    if info["status"] in ("dead", "cancelled"):
                        raise RuntimeError(f"task {task_id} ended {info['status']}: {info}")
                samples.append(info["finished_at"] - info["created_at"])
        return samples


# Celery ------------------------------------------------------------------------------


@contextlib.contextmanager
def celery_worker(ctx: Context) -> Iterator[tuple[Any, Parts]]:
    """A prefork worker of 2 processes on the local Redis, pinned like the agent; the
    ``noop`` task of ``benchmarks/celery_noop.py`` as the client side sees it, and the
    worker's processes."""
    queue = f"hyac-bench-{os.getpid()}-{time.monotonic_ns()}"
    os.environ["HYAC_BENCH_REDIS_URL"] = REDIS_URL
    os.environ["HYAC_BENCH_QUEUE"] = queue
    module = importlib.import_module("benchmarks.celery_noop")
    module.app.conf.task_default_queue = queue
    home = ctx.scratch("celery")
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    with (home / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            [celery, "-A", "celery_noop", "worker", "--concurrency", "2", "--loglevel", CELERY_LOGLEVEL,
             "-Q", queue],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO / "benchmarks",
            env={**os.environ, "HYAC_BENCH_QUEUE": queue}, preexec_fn=pinned(ctx.sut_cpus),
            start_new_session=True,
        )
    try:
        try:
            module.noop.delay().get(timeout=60)
        except Exception as exc:
            raise RuntimeError(f"the Celery worker did not answer ({exc}): "
                               f"{(home / 'worker.log').read_text()[-2000:]}") from exc
        yield module.noop, {"celery worker": lambda: [process.pid, *descendants(process.pid)]}
    finally:
        stop_process(process)
        with contextlib.suppress(Exception):
            module.app.connection_for_write().default_channel.queue_delete(queue)


def celery_burst(noop: Any, count: int) -> Burst:
    started = time.perf_counter()
    results = in_threads(count, CLIENT_THREADS, lambda _c: noop.delay(), lambda: None,
                         lambda _c: None)
    enqueued = time.perf_counter() - started
    for result in results:
        result.get(timeout=120)
    return Burst(count, enqueued, time.perf_counter() - started)


def celery_round_trips(noop: Any, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        noop.delay().get(timeout=60)
        samples.append(time.perf_counter() - started)
    return samples


def redis_missing() -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis client is not installed"
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as exc:
        return f"no Redis at {REDIS_URL} ({exc})"
    return None


# the run -----------------------------------------------------------------------------


@contextlib.contextmanager
def hyac_engine(ctx: Context, engine: str) -> Iterator[tuple[Agent, Parts]]:
    """An agent on the embedded queue, or on Celery (``HYAC_QUEUE=celery``, the local
    Redis, a queue of its own) with one ``hyac-agent worker`` beside it sharing its
    data dir, both pinned to the system-under-test CPU; and their processes."""
    if engine == "embedded":
        with running_agent(ctx, "queue") as agent:
            yield agent, {"agent": lambda: [agent.pid],
                          "sandboxes": lambda: descendants(agent.pid)}
        return
    env = {"HYAC_QUEUE": "celery", "HYAC_BROKER_URL": REDIS_URL,
           "HYAC_CELERY_QUEUE": f"hyac-bench-agent-{os.getpid()}-{time.monotonic_ns()}"}
    with running_agent(ctx, "queue-celery", env=env) as agent:
        with (agent.data_dir.parent / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                # at the log level its Celery baseline runs at (no line per task)
                [sys.executable, "-m", "hyac_agent", "worker", "--loglevel", CELERY_LOGLEVEL],
                stdout=log,
                stderr=subprocess.STDOUT, env=agent.env, cwd=agent.data_dir.parent,
                preexec_fn=pinned(ctx.sut_cpus), start_new_session=True,
            )
        try:
            yield agent, {"agent": lambda: [agent.pid], "worker": lambda: [worker.pid],
                          "sandboxes": lambda: descendants(agent.pid) + descendants(worker.pid)}
        finally:
            stop_process(worker)


def measure(ctx: Context, baseline: tuple[Any, Parts], engine: str, tasks: int, rounds: int,
            singles: int) -> dict[str, Any]:
    """Bursts of ``engine`` and of Celery in alternation, with the CPU each side's parts
    used; one-at-a-time overheads."""
    noop, celery_parts = baseline
    hyac_bursts: list[Burst] = []
    celery_bursts: list[Burst] = []
    with hyac_engine(ctx, engine) as (agent, hyac_parts):
        deploy(agent, "noop", NOOP_SOURCE)
        hyac = HyacTasks(agent, "noop")
        hyac.burst(20)  # warm: the worker and the store's pages
        for _ in range(rounds):
            celery_bursts.append(metered(celery_parts, lambda: celery_burst(noop, tasks)))
            hyac_bursts.append(metered(hyac_parts, lambda: hyac.burst(tasks)))
        overhead = hyac.overhead(singles) if engine == "embedded" else []
    return {"hyac": hyac_bursts, "celery": celery_bursts, "overhead": overhead}


def run(ctx: Context) -> list[Figure]:
    if reason := redis_missing():
        ctx.notes.append(f"queue skipped: its Celery baseline needs Redis: {reason}")
        return []
    tasks = ctx.pick(60, 300)
    rounds = ctx.pick(1, 3)
    singles = ctx.pick(20, 100)
    with celery_worker(ctx) as baseline:
        noop = baseline[0]
        celery_burst(noop, 20)  # warm
        embedded = measure(ctx, baseline, "embedded", tasks, rounds, singles)
        on_celery = measure(ctx, baseline, "celery", tasks, rounds, singles)
        round_trips = celery_round_trips(noop, singles)
    detail = {"tasks": tasks, "rounds": rounds, "client_threads": CLIENT_THREADS,
              "celery": "5.x prefork ×2, Redis broker and result backend",
              "hyac_concurrency": "HYAC_TASK_CONCURRENCY default"}
    name = "Celery + Redis, no-op"
    overhead = embedded["overhead"]
    p50 = median(overhead)
    sane = figure("queue.overhead.p50", "task overhead p50 (one at a time)", p50, "s",
                  median(round_trips), f"{name}: .delay().get() p50", samples=len(overhead),
                  p99=percentile(overhead, 99), celery_p99=percentile(round_trips, 99))
    sane.target, sane.met = "p50 < 5 ms", p50 < 0.005

    def rate(bursts: list[Burst], end_to_end: bool) -> float:
        return median([b.end_to_end_rate if end_to_end else b.enqueue_rate for b in bursts])

    # Where the time goes: CPU per task of each side's parts (the sides share one CPU,
    # so a part's milliseconds are what it takes from the others).
    cpu = {"embedded": cpu_per_task(embedded["hyac"]), "celery": cpu_per_task(on_celery["hyac"]),
           "baseline": cpu_per_task(embedded["celery"] + on_celery["celery"])}
    for side, label in (("embedded", "Hyac, embedded queue"), ("celery", "Hyac on Celery"),
                        ("baseline", "Celery + Redis")):
        if cpu[side]:
            parts = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu[side].items() if name != "total")
            ctx.notes.append(f"queue CPU per task, {label}: {cpu[side]['total']:.2f} ms ({parts})")

    return [
        figure("queue.embedded.end_to_end", "tasks/s end to end (embedded queue)",
               rate(embedded["hyac"], True), "tasks/s", rate(embedded["celery"], True), name,
               at_least=1.0, cpu_ms_per_task=cpu["embedded"],
               baseline_cpu_ms_per_task=cpu["baseline"], **detail),
        figure("queue.embedded.enqueue", "tasks/s enqueued (embedded queue)",
               rate(embedded["hyac"], False), "tasks/s", rate(embedded["celery"], False), name,
               **detail),
        figure("queue.celery.end_to_end", "tasks/s end to end (Hyac on Celery)",
               rate(on_celery["hyac"], True), "tasks/s", rate(on_celery["celery"], True), name,
               at_least=0.7, hyac_workers="1 hyac-agent worker beside the agent",
               cpu_ms_per_task=cpu["celery"], baseline_cpu_ms_per_task=cpu["baseline"], **detail),
        figure("queue.celery.enqueue", "tasks/s enqueued (Hyac on Celery)",
               rate(on_celery["hyac"], False), "tasks/s", rate(on_celery["celery"], False), name,
               **detail),
        sane,
    ]
