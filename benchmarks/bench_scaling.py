"""7. Scaling: warm throughput and memory with 1, 100 and 1,000 deployed functions, of
which at most 50 are warm (short mode: 1, 20, 100 deployed, at most 10 warm). One agent;
functions are deployed over the API concurrently, then the warm set is invoked round
robin over 16 connections.

What to read: cost must follow what is warm, not what is deployed. The ratios at each
stage are against the one-function stage; ``scaling.deployed_cost.*`` compares the
largest stage with the middle one, which have the same number of warm functions.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.harness import (
    ECHO_BODY,
    Context,
    Figure,
    deploy_many,
    descendants,
    figure,
    rss_bytes,
    running_agent,
)
from benchmarks.loadgen import run_load

CONNECTIONS = 16


def source(i: int) -> str:
    # Distinct content per function: each is its own bundle, version and worker.
    return f"# function {i}\ndef main(context):\n    return context.request.json()\n"


async def warm(urls: list[str], concurrency: int = 4) -> None:
    import httpx

    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=120) as client:

        async def one(url: str) -> None:
            async with gate:
                (await client.post(url, content=ECHO_BODY)).raise_for_status()

        await asyncio.gather(*(one(u) for u in urls))


def run(ctx: Context) -> list[Figure]:
    stages = ctx.pick([(1, 1), (20, 10), (100, 10)], [(1, 1), (100, 50), (1000, 50)])
    duration = ctx.pick(1, 5)
    rows: list[dict[str, float]] = []
    with running_agent(ctx, "scaling") as agent:
        deployed = 0
        for total, warm_count in stages:
            started = time.perf_counter()
            asyncio.run(deploy_many(agent, {f"f{i}": source(i) for i in range(deployed, total)}))
            deploy_seconds = time.perf_counter() - started
            deployed = total
            urls = [agent.gateway(f"f{i}") for i in range(warm_count)]
            asyncio.run(warm(urls))
            run_load(urls, ECHO_BODY, CONNECTIONS, 1, ctx.load_cpus, ctx.loadgen)
            load = run_load(urls, ECHO_BODY, CONNECTIONS, duration, ctx.load_cpus, ctx.loadgen)
            if load.errors:
                raise RuntimeError(f"{load.errors} errors at {total} deployed")
            time.sleep(0.5)
            workers = agent.pool_stats()["workers"]
            rows.append({
                "deployed": total, "warm": warm_count, "workers": workers, "rps": load.rps,
                "p99": load.p99, "agent_rss": rss_bytes(agent.pid),
                "workers_rss": sum(rss_bytes(p) for p in descendants(agent.pid)),
                "deploy_seconds": deploy_seconds,
            })
    first, middle, last = rows
    figures = []
    for row in rows[1:]:
        n, w = int(row["deployed"]), int(row["warm"])
        detail = {k: row[k] for k in ("deployed", "warm", "workers", "workers_rss", "p99", "deploy_seconds")}
        figures += [
            figure(f"scaling.d{n}.throughput", f"rps, {n} deployed/{w} warm", row["rps"], "req/s",
                   first["rps"], "1 deployed/1 warm", **detail),
            figure(f"scaling.d{n}.agent_rss", f"agent RSS, {n} deployed/{w} warm", row["agent_rss"],
                   "B", first["agent_rss"], "1 deployed/1 warm", **detail),
        ]
    label = f"{int(last['deployed'])} vs {int(middle['deployed'])} deployed, {int(last['warm'])} warm"
    figures += [
        figure("scaling.deployed_cost.throughput", f"rps, {label}", last["rps"], "req/s",
               middle["rps"], f"{int(middle['deployed'])} deployed", at_least=0.8),
        figure("scaling.deployed_cost.agent_rss", f"agent RSS, {label}", last["agent_rss"], "B",
               middle["agent_rss"], f"{int(middle['deployed'])} deployed", at_most=1.25),
    ]
    return figures
