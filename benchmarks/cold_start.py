"""Cold start per sandbox backend: a pool miss (boot a sandbox, load the code, first
answer) and a pool hit (a pre-started generic sandbox: load the code, first answer).

Printed as ratios to baselines measured in the same run: spawning `python -c pass` for
every backend, bubblewrap itself starting the worker's interpreter for bwrap's pool miss
(`bwrap --unshare-all --die-with-parent --ro-bind / / --proc /proc --dev /dev --tmpfs
/tmp PYTHON -I -c pass`, bubblewrap's own minimal sandbox around the same interpreter),
`docker run --rm IMAGE true` for docker's pool miss, and for gvisor
`runsc --platform=P --network=none do true` (gVisor's own floor) and the docker
backend's pool hit and miss of the same run.

`--runtime java17` measures a Java function instead (the bootstrap compiles it in memory
at init), against a bare JVM start, `java -Xshare:auto -version`.

    python benchmarks/cold_start.py [--short] [--json out.json] [--backend bwrap ...]
                                    [--runtime java17]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hyac_agent.execution.channel import encode_frame, read_frame  # noqa: E402
from hyac_agent.sandbox import BACKENDS, SandboxSettings, SandboxSpec  # noqa: E402
from hyac_agent.sandbox.docker import image_for  # noqa: E402

RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
SOURCE = "def main(context):\n    return {'ok': True}\n"
ENTRY = "functions/f.py"
JAVA_SOURCE = ("import java.util.Map;\npublic class F {\n    public static Object handle(Context c) "
               "{\n        return Map.of(\"ok\", true);\n    }\n}\n")
#: how long a pre-started generic sandbox is left before the request: a JVM warms its
#: compiler while it waits for its function
SETTLE = {"python": 0.3, "java": 3.0}


def timed(fn: Any, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def first_answer(sandbox: Any, bundle: Path, sha: str) -> None:
    await asyncio.to_thread(sandbox.load_code, bundle, sha)
    reader, writer = await asyncio.open_unix_connection(sock=sandbox.channel)
    writer.write(encode_frame({
        "type": "init", "code_dir": sandbox.code_dir, "entry": ENTRY, "handler": "main",
        "function": {"tenant": "bench", "name": "f", "version": 1, "sha256": sha, "runtime": RUNTIME},
        "env": {}, "timeout": 30,
    }))
    assert (await read_frame(reader) or {}).get("type") == "ready"
    writer.write(encode_frame({"type": "invoke", "id": "r", "request": {}, "deadline": time.time() + 30}))
    while True:
        message = await read_frame(reader)
        if message is None or message["type"] == "result":
            break


async def measure_backend(name: str, runs: int, workdir: Path) -> dict[str, float]:
    backend = BACKENDS[name](SandboxSettings(run_dir=workdir / name))
    runtime = backend.resolve_runtime(RUNTIME)
    bundle = workdir / "bundle"
    (bundle / "functions").mkdir(parents=True, exist_ok=True)
    (bundle / ENTRY).write_text(JAVA_SOURCE if ENTRY.endswith(".java") else SOURCE)
    if ENTRY.endswith(".java"):  # as a deploy does: the classes travel in the bundle
        from hyac_agent import runtimes
        from hyac_agent.deps.compile import check_java

        # compiled by the host's JDK, as at deploy, whichever backend runs the workers
        for rel, data in check_java(runtimes.resolve(RUNTIME), {ENTRY: JAVA_SOURCE.encode()},
                                    ENTRY, None, True).items():
            (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
            (bundle / rel).write_bytes(data)
    misses, hits = [], []
    for i in range(runs):
        started = time.perf_counter()
        sandbox = await backend.start(SandboxSpec(runtime=runtime))
        await first_answer(sandbox, bundle, f"miss{i}")
        misses.append(time.perf_counter() - started)
        await sandbox.kill()
        generic = await backend.start(SandboxSpec(runtime=runtime))
        # Pre-started: its boot is not part of the request.
        await asyncio.sleep(SETTLE.get(runtime.family, 0.3))
        started = time.perf_counter()
        await first_answer(generic, bundle, f"hit{i}")
        hits.append(time.perf_counter() - started)
        await generic.kill()
    return {"pool_miss": statistics.median(misses), "pool_hit": statistics.median(hits)}


def gvisor_baselines(results: dict[str, Any], row: dict[str, Any], runs: int) -> None:
    """gvisor against `runsc do true` on its platform and against the docker backend."""
    from hyac_agent.sandbox.gvisor import GvisorBackend, runsc_path

    platform = GvisorBackend().platform
    runsc = runsc_path() or "runsc"
    runsc_do = timed(lambda: subprocess.run(
        [runsc, f"--platform={platform}", "--network=none", "do", "true"],
        check=True, capture_output=True, cwd="/"), max(1, runs // 2))
    results["baselines"]["runsc_do_true"] = runsc_do
    row["platform"] = platform
    row["miss_vs_runsc_do"] = row["pool_miss"] / runsc_do
    docker = results["backends"].get("docker", {})
    if "pool_hit" in docker:
        row["hit_vs_docker"] = row["pool_hit"] / docker["pool_hit"]
        row["miss_vs_docker"] = row["pool_miss"] / docker["pool_miss"]


def use_runtime(name: str) -> None:
    global RUNTIME, ENTRY
    RUNTIME = name
    ENTRY = "functions/F.java" if name.startswith("java") else "functions/f.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a few seconds: fewer runs")
    parser.add_argument("--json", default="cold_start.json", help="where to write the results")
    parser.add_argument("--backend", action="append", choices=["bwrap", "docker", "gvisor"])
    parser.add_argument("--runtime", default=RUNTIME, help="the function's runtime (java17: "
                        "a Java function, against a bare JVM start)")
    args = parser.parse_args()
    use_runtime(args.runtime)
    runs = 2 if args.short else 10
    names = args.backend or ["bwrap", "docker", "gvisor"]
    python_spawn = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), runs * 2)
    results: dict[str, Any] = {"runs": runs, "baselines": {"python_spawn": python_spawn}, "backends": {},
                               "runtime": RUNTIME}
    if ENTRY.endswith(".java"):
        from hyac_agent.runtimes import resolve

        java = str(resolve(RUNTIME).interpreter)
        results["baselines"]["jvm_start"] = timed(lambda: subprocess.run(
            [java, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-version"], check=True,
            capture_output=True), runs)
    with tempfile.TemporaryDirectory(prefix="hyac-bench-") as tmp:
        for name in names:
            reason = BACKENDS[name].unavailable_reason()
            if name in ("docker", "gvisor") and reason is None:
                reason = BACKENDS[name].default_image_missing()  # type: ignore[attr-defined]
            if reason:
                results["backends"][name] = {"skipped": reason}
                continue
            row: dict[str, Any] = asyncio.run(measure_backend(name, runs, Path(tmp)))
            row["hit_vs_python_spawn"] = row["pool_hit"] / python_spawn
            row["miss_vs_python_spawn"] = row["pool_miss"] / python_spawn
            if "jvm_start" in results["baselines"]:
                row["miss_vs_jvm_start"] = row["pool_miss"] / results["baselines"]["jvm_start"]
            if name == "bwrap" and not ENTRY.endswith(".java"):  # java: against a bare JVM
                python = str(BACKENDS[name](SandboxSettings(run_dir=Path(tmp))).resolve_runtime(
                    RUNTIME).interpreter)
                bare_bwrap = timed(lambda python=python: subprocess.run(
                    ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                     "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", python, "-I", "-c",
                     "pass"], check=True, capture_output=True), runs * 2)
                results["baselines"]["bare_bwrap"] = bare_bwrap
                row["miss_vs_bare_bwrap"] = row["pool_miss"] / bare_bwrap
            if name == "docker":
                image = image_for(SandboxSettings(run_dir=Path(tmp)), RUNTIME)
                docker_run = timed(lambda image=image: subprocess.run(
                    ["docker", "run", "--rm", "--network", "none", image, "true"],
                    check=True, capture_output=True), max(1, runs // 2))
                results["baselines"]["docker_run_true"] = docker_run
                row["miss_vs_docker_run"] = row["pool_miss"] / docker_run
            if name == "gvisor":
                gvisor_baselines(results, row, runs)
            results["backends"][name] = row
    print(f"runtime {RUNTIME}; baseline python -c pass: {python_spawn * 1000:7.1f} ms")
    if "jvm_start" in results["baselines"]:
        print(f"baseline java -version:  {results['baselines']['jvm_start'] * 1000:7.1f} ms")
    if "bare_bwrap" in results["baselines"]:
        print(f"baseline bare bwrap python -c pass: {results['baselines']['bare_bwrap'] * 1000:6.1f} ms")
    if "docker_run_true" in results["baselines"]:
        print(f"baseline docker run true: {results['baselines']['docker_run_true'] * 1000:6.1f} ms")
    if "runsc_do_true" in results["baselines"]:
        print(f"baseline runsc do true:   {results['baselines']['runsc_do_true'] * 1000:6.1f} ms")
    print(f"{'backend':8} {'pool hit':>10} {'x spawn':>8} {'pool miss':>10} {'x spawn':>8} "
          f"{'x docker run':>13}")
    for name, row in results["backends"].items():
        if "skipped" in row:
            print(f"{name:8} skipped: {row['skipped']}")
            continue
        print(f"{name:8} {row['pool_hit'] * 1000:8.1f}ms {row['hit_vs_python_spawn']:8.2f} "
              f"{row['pool_miss'] * 1000:8.1f}ms {row['miss_vs_python_spawn']:8.2f} "
              f"{row.get('miss_vs_docker_run', float('nan')):13.2f}")
        if "miss_vs_runsc_do" in row:
            print(f"{'':8} platform {row['platform']}: pool miss {row['miss_vs_runsc_do']:.2f}x "
                  f"runsc do true; vs docker: hit {row.get('hit_vs_docker', float('nan')):.2f}x, "
                  f"miss {row.get('miss_vs_docker', float('nan')):.2f}x")
    Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
