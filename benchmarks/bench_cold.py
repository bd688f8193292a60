"""3. Cold start. Always: the first gateway request after deploying a new function (the
pool has a generic sandbox ready, as on an agent that has been up a while), against
spawning ``python -c pass``. When ``benchmarks/cold_start.py`` is present its per-backend
pool hit / pool miss figures are included as well (run as a script, in its own process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.harness import (
    ECHO_BODY,
    Context,
    Figure,
    deploy,
    figure,
    median,
    running_agent,
    time_command,
    wait_for,
)

COLD_START = Path(__file__).resolve().parent / "cold_start.py"


def first_invoke(ctx: Context) -> list[Figure]:
    runs = ctx.pick(3, 10)
    samples: list[float] = []
    with running_agent(ctx, "cold") as agent, httpx.Client(timeout=60) as client:
        for i in range(runs):
            wait_for(lambda: agent.pool_stats()["generic"] >= 1, 30, "a generic sandbox", 0.1)
            time.sleep(0.2)  # let the refill's own work settle
            deploy(agent, f"cold{i}", f"# cold start {i}\ndef main(context):\n    return {{'n': {i}}}\n")
            started = time.perf_counter()
            response = client.post(agent.gateway(f"cold{i}"), content=ECHO_BODY)
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
            assert response.json() == {"n": i}, response.text
        stats = agent.pool_stats()
    spawn = median(time_command([sys.executable, "-c", "pass"], runs * 2))
    return [figure("cold.first_invoke", "first invoke after deploy", median(samples), "s", spawn,
                   "spawn python -c pass", runs=runs, statistic="median",
                   pool_hits=stats["hits"], pool_misses=stats["misses"])]


def from_cold_start_script(ctx: Context) -> list[Figure]:
    out = ctx.scratch("cold-start-script") / "cold_start.json"
    argv = [sys.executable, str(COLD_START), "--json", str(out)]
    if ctx.short:
        argv.insert(2, "--short")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=ctx.pick(120, 900),
                          cwd=COLD_START.parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"cold_start.py exited {done.returncode}: {done.stderr[-2000:]}")
    data = json.loads(out.read_text())
    spawn = data["baselines"]["python_spawn"]
    figures = []
    for backend, row in data.get("backends", {}).items():
        if "skipped" in row:
            ctx.notes.append(f"cold_start.py skipped {backend}: {row['skipped']}")
            continue
        for kind in ("pool_hit", "pool_miss"):
            figures.append(figure(f"cold.{backend}.{kind}", f"{backend} {kind.replace('_', ' ')}",
                                  row[kind], "s", spawn, "spawn python -c pass",
                                  at_most=3 if kind == "pool_hit" else None,
                                  source="benchmarks/cold_start.py", runs=data.get("runs")))
        if backend == "bwrap" and "bare_bwrap" in data["baselines"]:
            # A burst that outruns the pool pays this on every request.
            figures.append(figure("cold.bwrap.pool_miss_vs_bare_bwrap", "bwrap pool miss vs bare bwrap",
                                  row["pool_miss"], "s", data["baselines"]["bare_bwrap"],
                                  "bwrap --unshare-all python -c pass", at_most=2,
                                  source="benchmarks/cold_start.py"))
        if backend == "gvisor" and "runsc_do_true" in data["baselines"]:
            figures.append(figure(f"cold.{backend}.pool_miss_vs_runsc_do",
                                  f"gvisor pool miss vs runsc do true ({row.get('platform')})",
                                  row["pool_miss"], "s", data["baselines"]["runsc_do_true"],
                                  "runsc do true", source="benchmarks/cold_start.py"))
        if backend == "gvisor" and "pool_hit" in data["backends"].get("docker", {}):
            docker = data["backends"]["docker"]
            for kind in ("pool_hit", "pool_miss"):
                figures.append(figure(f"cold.{backend}.{kind}_vs_docker",
                                      f"gvisor {kind.replace('_', ' ')} vs docker's",
                                      row[kind], "s", docker[kind], f"docker backend {kind}",
                                      source="benchmarks/cold_start.py"))
        if backend == "docker" and "docker_run_true" in data["baselines"]:
            figures.append(figure(f"cold.{backend}.pool_miss_vs_docker", f"{backend} pool miss vs docker run",
                                  row["pool_miss"], "s", data["baselines"]["docker_run_true"],
                                  "docker run --rm IMAGE true", at_most=1.5,
                                  source="benchmarks/cold_start.py"))
    return figures


def java_from_cold_start_script(ctx: Context) -> list[Figure]:
    """java17 on bwrap: pool hit and miss against a bare JVM start (`java -version`)."""
    from hyac_agent.runtimes import resolve
    from hyac_common.errors import InvalidInput

    try:
        resolve("java17")
    except InvalidInput as exc:
        ctx.notes.append(f"java17 not measured: {exc.message}")
        return []
    out = ctx.scratch("cold-start-java") / "cold_start_java.json"
    argv = [sys.executable, str(COLD_START), "--json", str(out), "--backend", "bwrap",
            "--runtime", "java17", *(["--short"] if ctx.short else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=ctx.pick(300, 1800),
                          cwd=COLD_START.parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"cold_start.py --runtime java17 exited {done.returncode}: "
                           f"{done.stderr[-2000:]}")
    data = json.loads(out.read_text())
    row = data["backends"].get("bwrap", {})
    if "skipped" in row:
        ctx.notes.append(f"cold_start.py skipped java17 on bwrap: {row['skipped']}")
        return []
    jvm = data["baselines"]["jvm_start"]
    return [figure(f"cold.java17.bwrap.{kind}", f"java17 on bwrap {kind.replace('_', ' ')}",
                   row[kind], "s", jvm, "java -Xshare:auto -version",
                   source="benchmarks/cold_start.py --runtime java17", runs=data.get("runs"))
            for kind in ("pool_hit", "pool_miss")]


def run(ctx: Context) -> list[Figure]:
    figures = first_invoke(ctx)
    if COLD_START.exists():
        figures += from_cold_start_script(ctx)
        figures += java_from_cold_start_script(ctx)
    return figures
