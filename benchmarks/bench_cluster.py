"""10. Scale-out: warm invokes through HAProxy to two agents on one PostgreSQL, against
the same balancer with one agent behind it (same store, same function, same load).

Both agents run on the system-under-test CPU set; on a 2-core host that is ONE core
(the load generator has the other), so two agents share what one had and the honest
expectation is a ratio near 1: this figure shows that the second agent costs nothing
(the shared store, the quota counters and the change feed stay off the hot path's
critical section), not that it adds a core. On a host with more cores, give each agent
its own (``HYAC_BENCH_SUT_CPUS``-style pinning in the harness) to see the gain.

Needs HAProxy (Debian: ``apt-get install haproxy``) and PostgreSQL; without them the
figure is skipped with a note.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.harness import (
    ECHO_BODY,
    ECHO_SOURCE,
    Context,
    Figure,
    deploy,
    figure,
    free_port,
    median,
    pinned,
    running_agent,
    stop_process,
    wait_for,
)
from benchmarks.loadgen import Load, run_load

POSTGRES_ADMIN_URL = os.environ.get(
    "HYAC_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)
CONNECTIONS = 32


def why_not() -> str | None:
    if shutil.which("haproxy") is None:
        return "HAProxy is not installed (apt-get install haproxy)"
    try:
        from sqlalchemy import create_engine

        engine = create_engine(POSTGRES_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}"
    return None


@contextlib.contextmanager
def database() -> Iterator[str]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = "hyac_bench_" + secrets.token_hex(4)
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def balancer(ctx: Context, backends: list[str]) -> Iterator[str]:
    """HAProxy on a free 127.0.0.1 port, round robin over ``backends`` (http://host:port)."""
    port = free_port()
    servers = "\n".join(
        f"    server a{i} {url.split('://', 1)[1]}" for i, url in enumerate(backends)
    )
    config = ctx.scratch("haproxy") / "haproxy.cfg"
    config.write_text(f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
frontend hyac
    bind 127.0.0.1:{port}
    default_backend agents
backend agents
    balance roundrobin
{servers}
""")
    process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, preexec_fn=pinned(ctx.load_cpus),
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url + "/v1/health"), 20, "HAProxy to answer")
        yield url
    finally:
        stop_process(process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _load(ctx: Context, url: str, seconds: float) -> Load:
    run_load([url], ECHO_BODY, CONNECTIONS, 1, ctx.load_cpus, ctx.loadgen)  # warm every path
    return run_load([url], ECHO_BODY, CONNECTIONS, seconds, ctx.load_cpus, ctx.loadgen)


def run(ctx: Context) -> list[Figure]:
    if reason := why_not():
        ctx.notes.append(f"cluster skipped: {reason}")
        return []
    seconds = ctx.pick(3, 10)
    rounds = ctx.pick(1, 3)
    with database() as url:
        env = {"HYAC_DATABASE_URL": url}
        with running_agent(ctx, "cluster-a", env) as a, running_agent(ctx, "cluster-b", env) as b:
            deploy(a, "echo", ECHO_SOURCE)
            path = "/default/echo"
            wait_for(lambda: httpx.post(b.url + path, content=ECHO_BODY, timeout=30).status_code
                     == 200, 60, "the second agent to serve the function")
            one: list[Load] = []
            two: list[Load] = []
            for _ in range(rounds):  # alternated, so a noisy neighbour hits both
                with balancer(ctx, [a.url]) as lb:
                    one.append(_load(ctx, lb + path, seconds))
                with balancer(ctx, [a.url, b.url]) as lb:
                    two.append(_load(ctx, lb + path, seconds))
    one_rps = median([load.rps for load in one])
    two_rps = median([load.rps for load in two])
    sut = sorted(ctx.sut_cpus)
    return [figure(
        "cluster_two_agents_rps", "warm invokes/s through HAProxy: 2 agents vs 1 (one store)",
        two_rps, "req/s", one_rps, "1 agent behind the same HAProxy",
        connections=CONNECTIONS, seconds=seconds, rounds=rounds, agents_cpus=sut,
        note=(f"both agents share CPU(s) {sut}: on a 2-core host a ratio near 1 is the "
              "expected, honest result"),
        one_agent={"rps": one_rps, "p50_ms": median([x.p50 for x in one]) * 1000,
                   "p99_ms": median([x.p99 for x in one]) * 1000,
                   "errors": sum(x.errors for x in one)},
        two_agents={"rps": two_rps, "p50_ms": median([x.p50 for x in two]) * 1000,
                    "p99_ms": median([x.p99 for x in two]) * 1000,
                    "errors": sum(x.errors for x in two)},
        tool=one[0].tool,
    )]


if __name__ == "__main__":
    import json
    import sys
    import tempfile

    from benchmarks.harness import plan_cpus

    sut_cpus, load_cpus, note = plan_cpus()
    with tempfile.TemporaryDirectory(prefix="hyac-bench-cluster-") as work:
        context = Context(short="--short" in sys.argv, workdir=Path(work), sut_cpus=sut_cpus,
                          load_cpus=load_cpus, loadgen="wrk" if shutil.which("wrk") else "python",
                          notes=[note])
        started = time.monotonic()
        figures = run(context)
        print(json.dumps({"figures": [f.as_json() for f in figures], "notes": context.notes,
                          "seconds": round(time.monotonic() - started, 1)}, indent=2))
