"""The benchmark suite must keep running: its short mode, end to end, in a subprocess,
writes every figure of the groups it runs with a numeric ratio against its same-run
baseline. The groups that start whole fleets (scaling's hundred functions, the queue's
Celery workers, the cluster behind HAProxy, the dev loop) are left to
`python -m benchmarks`, to keep the test suite's time; each is run when its figures are
measured for benchmarks/README.md."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, requires_bwrap

EXPECTED = [
    "gateway.keepalive.p50",
    *(f"gateway.c{c}.{m}" for c in (1, 16, 64) for m in ("throughput", "p50", "p99")),
    "cli.invoke",
    "cli.help",
    "cold.first_invoke",
    "cold.bwrap.pool_miss_vs_bare_bwrap",  # bwrap is required above
    "deploy.noop",
    "deploy.one_line",
    "logs.p50",
    "memory.agent_idle",
    "memory.agent_one_warm",
    "memory.worker_interpreter",
    "memory.worker_tree",
    "wasm.cold_start",
    "wasm.warm_invoke",
]
GROUPS = ("gateway", "cli", "cold", "deploy", "logs", "memory", "wasm", "editor")
GVISOR = [f"cold.gvisor.{k}" for k in ("pool_hit", "pool_miss", "pool_miss_vs_runsc_do",
                                        "pool_hit_vs_docker", "pool_miss_vs_docker")]


@pytest.mark.slow
@requires_bwrap
@pytest.mark.timeout(900)
def test_short_mode_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--short", "--json", str(out),
         *(f"--only={group}" for group in GROUPS)],
        cwd=REPO, capture_output=True, text=True, timeout=840,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    results = json.loads(out.read_text())
    assert results["mode"] == "short"
    assert results["errors"] == {}
    figures = results["figures"]
    expected = list(EXPECTED)
    from hyac_agent.sandbox.gvisor import GvisorBackend

    # gvisor against runsc do true and the docker backend, where setup-gvisor.sh ran.
    expected += GVISOR if GvisorBackend.unavailable_reason() is None else []
    missing = [key for key in expected if key not in figures]
    assert not missing, missing
    for key, fig in figures.items():
        for field in ("value", "baseline", "ratio"):
            assert isinstance(fig[field], (int, float)) and math.isfinite(fig[field]), (key, field, fig)
        assert fig["baseline"] > 0, (key, fig)
        assert fig["baseline_name"], key
    assert "machine" in results and results["machine"]["nproc"] >= 1
