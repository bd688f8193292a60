"""9. The python3.12-wasm runtime: cold start and warm invoke through the agent (bwrap
around the worker host, wasmtime inside it), against a plain wasmtime run of the same
module in the same run (``benchmarks/wasm_plain.py``, started by the runtime's own
launcher): a process that loads the module and runs ``python -c pass`` in one fresh
instance, and fresh instances on the already loaded module (what each invocation would
cost if instances were not kept warm).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from benchmarks.harness import ECHO_BODY, Context, Figure, deploy, figure, median, running_agent, time_command

PLAIN = Path(__file__).resolve().parent / "wasm_plain.py"
RUNTIME = "python3.12-wasm"
SOURCE = "# {n}\ndef main(context):\n    return context.request.json()\n"


def run(ctx: Context) -> list[Figure]:
    from hyac_agent import runtimes
    from hyac_common.errors import InvalidInput

    try:
        launcher = str(runtimes.resolve(RUNTIME).interpreter)
    except InvalidInput as exc:
        ctx.notes.append(f"wasm skipped: {exc.message}")
        return []
    runs = ctx.pick(3, 10)
    warm_runs = ctx.pick(50, 500)
    cold: list[float] = []
    warm: list[float] = []
    python_warm: list[float] = []
    with running_agent(ctx, "wasm") as agent, httpx.Client(timeout=60) as client:
        deploy(agent, "py", SOURCE.format(n=0))
        client.post(agent.gateway("py"), content=ECHO_BODY).raise_for_status()
        for i in range(runs):
            deploy(agent, f"wasm{i}", SOURCE.format(n=i), runtime=RUNTIME)
            started = time.perf_counter()
            response = client.post(agent.gateway(f"wasm{i}"), content=ECHO_BODY)
            cold.append(time.perf_counter() - started)
            response.raise_for_status()
            assert response.json() == json.loads(ECHO_BODY), response.text
        for name, samples in (("wasm0", warm), ("py", python_warm)):
            for _ in range(warm_runs):
                started = time.perf_counter()
                client.post(agent.gateway(name), content=ECHO_BODY).raise_for_status()
                samples.append(time.perf_counter() - started)
    plain_process = median(time_command([launcher, str(PLAIN), "1"], runs))
    done = subprocess.run([launcher, str(PLAIN), str(runs * 2)], capture_output=True, text=True,
                          timeout=300, check=True)
    plain = json.loads(done.stdout)
    fresh = median(plain["fresh"])
    return [
        figure("wasm.cold_start", "python3.12-wasm first invoke after deploy", median(cold), "s",
               plain_process, "plain wasmtime process: load the module, run python -c pass",
               runs=runs, statistic="median", module_load=plain["load"]),
        figure("wasm.warm_invoke", "python3.12-wasm warm invoke (gateway)", median(warm), "s",
               fresh, "plain wasmtime: a fresh instance of the loaded module, python -c pass",
               runs=warm_runs, statistic="median", python_warm_invoke=median(python_warm),
               python_runtime="the agent's python3.X, same function"),
    ]
