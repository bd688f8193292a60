"""The soak benchmark keeps running: its quick mode, in a subprocess, drives every kind of
operation against a real agent and reports windows, figures and a verdict line. Nothing
here asserts a timing or a verdict: a few seconds on a shared machine prove neither."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_soak import MIX
from tests.conftest import REPO, requires_bwrap


@pytest.mark.slow
@requires_bwrap
@pytest.mark.timeout(300)
def test_quick_mode_reports_windows_figures_and_a_verdict(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_soak", "--quick", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "quick"
    assert [(w["start"], w["end"]) for w in report["windows"]] == [(i, i + 1) for i in range(6)]
    performed = {op for w in report["windows"] for op in w["by_op"]}
    assert performed == set(MIX), performed
    assert all(w["rss"] > 0 and w["fds"] > 0 for w in report["windows"])
    assert report["tasks_checked"] > 0
    assert all(w["agent_cpu_ms_per_op"] > 0 for w in report["windows"] if w["by_op"])
    assert set(report["figures"]) == {"soak.throughput", "soak.agent_rss", "soak.agent_fds",
                                      "soak.agent_cpu_per_op"}
    for key, fig in report["figures"].items():
        assert fig["baseline"] > 0 and math.isfinite(fig["ratio"]), (key, fig)
    assert report["verdict"].startswith(("verdict: steady — ", "verdict: DRIFT — "))
    assert done.stdout.splitlines()[-1] == report["verdict"]
