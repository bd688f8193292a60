"""Save-to-serving under `hyac dev`: the time from writing a one-line change to a
function file until the gateway answers with the new behaviour (target: a median under
200 ms).

Each save is written as soon as the previous one serves (a burst of edits: every save
takes a fresh sandbox, so this also measures how fast the pool refills); ``--pause S``
waits S seconds before each save instead, a developer's pace.

Printed with ratios to baselines measured in the same run: spawning `python -c pass`,
and a no-op `hyac deploy` (nothing changed, so it only loads the CLI, reads the project
and asks the agent).

    python benchmarks/dev_loop.py [--short] [--runs N] [--pause S] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HYAC = [sys.executable, "-m", "hyac_cli"]
SOURCE = "def main(context):\n    return {{'token': {token!r}}}\n"
POLL = 0.005  # seconds between gateway requests while waiting for the new version
TARGET = 0.2  # seconds, median save-to-serving


def spawn(args: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(args, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def start_agent(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    state = data_dir / "agent.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "hyac_agent", "serve", "--port", "0"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state.exists():
            info = json.loads(state.read_text())
            if info.get("pid") == process.pid:
                return process, str(info["url"])
        if process.poll() is not None:
            raise SystemExit(f"the agent exited with {process.returncode}")
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the agent did not start within 30s")


class Dev:
    """`hyac dev --no-logs` in the background; ``wait_for`` reads its merged output."""

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [*HYAC, "dev", "--no-logs"], cwd=project, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.output: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "deployed" in line:
                self._ready.set()

    def wait_until_deployed(self, timeout: float = 60) -> None:
        if not self._ready.wait(timeout):
            raise SystemExit("hyac dev did not deploy:\n" + "".join(self.output))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=15)


def save_to_serving(path: Path, gateway: str, token: str, timeout: float = 30) -> float:
    with httpx.Client(timeout=10) as http:
        started = time.perf_counter()
        path.write_text(SOURCE.format(token=token))
        while time.perf_counter() - started < timeout:
            answer = http.get(gateway)
            if answer.status_code == 200 and answer.json().get("token") == token:
                return time.perf_counter() - started
            time.sleep(POLL)
    raise SystemExit(f"the change {token!r} was not serving after {timeout:g}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="a few runs, for CI")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds to wait before each save (default: none)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()
    runs = args.runs or (3 if args.short else 15)

    with tempfile.TemporaryDirectory(prefix="hyac-dev-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        env = {**os.environ, "HYAC_DATA_DIR": str(data_dir), "NO_COLOR": "1",
               "HYAC_CONFIG_DIR": str(work / "config")}
        for key in ("HYAC_URL", "HYAC_TOKEN", "HYAC_TENANT"):
            env.pop(key, None)
        agent, url = start_agent(data_dir, env)
        try:
            subprocess.run([*HYAC, "init", "demo", "--template", "empty"], cwd=work, env=env,
                           check=True, capture_output=True)
            project = work / "demo"
            function = project / "functions" / "bench.py"
            function.write_text(SOURCE.format(token="start"))
            dev = Dev(project, env)
            dev.wait_until_deployed()
            gateway = f"{url}/default/bench"
            save_to_serving(function, gateway, "warm-up")
            samples = []
            for i in range(runs):
                time.sleep(args.pause)
                samples.append(save_to_serving(function, gateway, f"t{i}"))
            code = dev.stop()
            python_spawn = statistics.median(
                spawn([sys.executable, "-c", "pass"], env) for _ in range(runs)
            )
            noop_deploy = statistics.median(
                spawn([*HYAC, "deploy"], env, cwd=project) for _ in range(runs)
            )
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=20)

    median = statistics.median(samples)
    results: dict[str, Any] = {
        "runs": runs,
        "pause_s": args.pause,
        "save_to_serving_median_s": round(median, 4),
        "save_to_serving_max_s": round(max(samples), 4),
        "baseline_python_spawn_s": round(python_spawn, 4),
        "baseline_noop_deploy_s": round(noop_deploy, 4),
        "ratio_to_python_spawn": round(median / python_spawn, 2),
        "ratio_to_noop_deploy": round(median / noop_deploy, 2),
        "dev_exit_code": code,
        "under_target": median < TARGET,
    }
    paced = f", {args.pause:g} s before each save" if args.pause else ""
    print(f"save-to-serving (median of {runs}{paced}): {median * 1000:.0f} ms "
          f"(max {max(samples) * 1000:.0f} ms) — target < {TARGET * 1000:.0f} ms: "
          f"{'met' if median < TARGET else 'MISSED'}")
    print(f"  baseline `python -c pass`: {python_spawn * 1000:.0f} ms "
          f"-> ratio {results['ratio_to_python_spawn']}x")
    print(f"  baseline no-op `hyac deploy`: {noop_deploy * 1000:.0f} ms "
          f"-> ratio {results['ratio_to_noop_deploy']}x")
    print(f"  `hyac dev` exited with {code} on SIGINT")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
