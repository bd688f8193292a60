"""1. Warm invoke through the HTTP gateway (a JSON echo function) against a bare Starlette
echo app on uvicorn: throughput and p50/p99 latency at 1, 16 and 64 connections.

Both servers are up at once on the same CPU and measured in alternation, round after
round, so a noisy neighbour hits both; each figure is the median over the rounds.

Beside requests/s, each run counts the CPU time the server's processes used (the agent
with its sandboxes, the bare app): CPU per request does not move with what the host
does between runs as much as requests/s does, and it says which side got dearer.

The sanity line is absolute: the p50 of single requests, one after another, over one
keep-alive connection (``http.client``, as a script would send them), for both
servers. A stall both sides share (Nagle against a delayed ACK costs ~40 ms) leaves
every ratio near 1 and shows only here.
"""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import httpx

from benchmarks.harness import (
    ECHO_BODY,
    ECHO_SOURCE,
    Context,
    Figure,
    cpu_seconds,
    deploy,
    descendants,
    figure,
    median,
    percentile,
    running_agent,
    running_bare_app,
)
from benchmarks.loadgen import Load, run_load

CONNECTIONS = (1, 16, 64)
#: what a warm request over a keep-alive connection on loopback must stay under
SANE_P50 = 0.005


def warm_up(url: str, ctx: Context) -> None:
    with httpx.Client(timeout=60) as client:
        for _ in range(20):
            response = client.post(url, content=ECHO_BODY, headers={"content-type": "application/json"})
            response.raise_for_status()
            assert response.json()["n"] == 42, response.text
    run_load([url], ECHO_BODY, 16, 1, ctx.load_cpus, ctx.loadgen)


def keep_alive_latencies(url: str, requests: int) -> list[float]:
    """Seconds per request, sent one after another over one keep-alive connection."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    samples = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            connection.request("POST", parts.path or "/", body=ECHO_BODY,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            body = response.read()
            samples.append(time.perf_counter() - started)
            if response.status != 200 or response.will_close:
                raise RuntimeError(f"{url}: {response.status} {body[:200]!r} (keep-alive: "
                                   f"{not response.will_close})")
    finally:
        connection.close()
    return samples


def sanity(bare: list[float], hyac: list[float]) -> Figure:
    result = figure("gateway.keepalive.p50", "keep-alive request p50 (sanity)", median(hyac), "s",
                    median(bare), "bare Starlette echo", requests=len(hyac),
                    hyac_p99=percentile(hyac, 99), bare_p99=percentile(bare, 99))
    # Absolute, on both sides: a baseline that stalls too makes every ratio a lie.
    result.target = f"both < {SANE_P50 * 1000:g} ms"
    result.met = result.value < SANE_P50 and result.baseline < SANE_P50
    return result


def run(ctx: Context) -> list[Figure]:
    duration = ctx.pick(1, 5)
    rounds = ctx.pick(1, 3)
    with running_bare_app(ctx) as bare_app, running_agent(ctx, "gateway") as agent:
        deploy(agent, "echo", ECHO_SOURCE)
        servers = {"bare": (bare_app.url, bare_app.pid), "hyac": (agent.gateway("echo"), agent.pid)}
        for url, _pid in servers.values():
            warm_up(url, ctx)
        samples: dict[tuple[str, int], list[Load]] = {}
        cpu: dict[tuple[str, int], list[float]] = {}  # seconds per request
        keep_alive: dict[str, list[float]] = {"bare": [], "hyac": []}
        for _ in range(rounds):
            for name, (url, _pid) in servers.items():
                keep_alive[name] += keep_alive_latencies(url, ctx.pick(200, 1000))
            for connections in CONNECTIONS:
                for name, (url, pid) in servers.items():
                    processes = [pid, *descendants(pid)]
                    before = cpu_seconds(processes)
                    load = run_load([url], ECHO_BODY, connections, duration, ctx.load_cpus, ctx.loadgen)
                    used = cpu_seconds(processes) - before
                    if load.errors:
                        raise RuntimeError(f"{name} at {connections} connections: {load.errors} "
                                           f"errors ({load.error_detail or load.tool})")
                    samples.setdefault((name, connections), []).append(load)
                    cpu.setdefault((name, connections), []).append(used / max(load.requests, 1))
    figures = [sanity(keep_alive["bare"], keep_alive["hyac"])]
    for connections in CONNECTIONS:
        bare, hyac = samples[("bare", connections)], samples[("hyac", connections)]
        hyac_cpu, bare_cpu = median(cpu[("hyac", connections)]), median(cpu[("bare", connections)])
        detail = {"rounds": rounds, "seconds_each": duration, "tool": hyac[0].tool,
                  "requests": sum(s.requests for s in hyac),
                  "cpu_us_per_request": round(hyac_cpu * 1e6, 1),
                  "baseline_cpu_us_per_request": round(bare_cpu * 1e6, 1)}
        if hyac_cpu > 0:
            ctx.notes.append(
                f"gateway CPU per request at {connections} conn: Hyac {hyac_cpu * 1e6:.0f} µs "
                f"(agent and sandboxes), bare app {bare_cpu * 1e6:.0f} µs: "
                f"{bare_cpu / hyac_cpu:.2f}× as a throughput ratio")
        figures += [
            figure(f"gateway.c{connections}.throughput", f"gateway rps, {connections} conn",
                   median([s.rps for s in hyac]), "req/s", median([s.rps for s in bare]),
                   "bare Starlette echo", at_least=0.5, **detail),
            figure(f"gateway.c{connections}.p50", f"gateway p50, {connections} conn",
                   median([s.p50 for s in hyac]), "s", median([s.p50 for s in bare]),
                   "bare Starlette echo", **detail),
            figure(f"gateway.c{connections}.p99", f"gateway p99, {connections} conn",
                   median([s.p99 for s in hyac]), "s", median([s.p99 for s in bare]),
                   "bare Starlette echo", at_most=3.0, **detail),
        ]
    return figures
