"""Run every Hyac benchmark, print a table of ratios against same-run baselines, and write
the figures as JSON.

    .venv/bin/python -m benchmarks [--short] [--json PATH] [--only NAME ...]
    python benchmarks/run.py      (the same)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Context, Figure, plan_cpus  # noqa: E402

HERE = Path(__file__).resolve().parent
#: name → module, in the order they run (the README numbers them the same way)
BENCHMARKS = {
    "gateway": "benchmarks.bench_gateway",
    "cli": "benchmarks.bench_cli",
    "cold": "benchmarks.bench_cold",
    "deploy": "benchmarks.bench_deploy",
    "logs": "benchmarks.bench_logs",
    "memory": "benchmarks.bench_memory",
    "scaling": "benchmarks.bench_scaling",
    "queue": "benchmarks.bench_queue",
    "wasm": "benchmarks.bench_wasm",
    "cluster": "benchmarks.bench_cluster",
    "editor": "benchmarks.bench_editor",
}
#: scripts other people own, run as ``python SCRIPT [--short] --json PATH`` when present;
#: their JSON is kept as it is under ``extra`` (cold_start.py's figures also feed "cold")
EXTRA_SCRIPTS = {"dev_loop": HERE / "dev_loop.py"}


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "nproc": os.cpu_count(),
        "allowed_cpus": sorted(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def run_extra_script(name: str, script: Path, ctx: Context) -> dict[str, Any]:
    out = ctx.scratch(name) / f"{name}.json"
    argv = [sys.executable, str(script), *(["--short"] if ctx.short else []), "--json", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=ctx.pick(180, 1800),
                          cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} exited {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(out.read_text())


def human(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.2f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "B":
        return f"{value / 2**20:.1f} MiB"
    if unit in ("req/s", "tasks/s"):
        return f"{value:,.0f}/s"
    return f"{value:g} {unit}"


def print_table(figures: list[Figure], errors: dict[str, str], header: str, notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a log file or CI: do not squeeze the table into 80 columns
        console = Console(width=150)
    table = Table(title=header, title_justify="left")
    for column, justify in (("figure", "left"), ("hyac", "right"), ("baseline", "right"),
                            ("ratio", "right"), ("target", "center"), ("baseline is", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for fig in figures:
        verdict = {True: "[green]met[/]", False: "[red]missed[/]", None: ""}[fig.met]
        table.add_row(fig.label, human(fig.value, fig.unit), human(fig.baseline, fig.unit),
                      f"{fig.ratio:.2f}×", f"{fig.target} {verdict}".strip(), fig.baseline_name)
    console.print(table)
    for note in notes:
        console.print(f"· {note}")
    for name, error in errors.items():
        console.print(f"[red]{name} failed:[/] {error.strip().splitlines()[-1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true",
                        help="a few seconds per figure, no thresholds asserted (CI)")
    parser.add_argument("--json", type=Path, default=HERE / "results.json", metavar="PATH",
                        help="where to write the figures (default: benchmarks/results.json)")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only these ({', '.join(BENCHMARKS)}); repeatable")
    parser.add_argument("--loadgen", choices=["wrk", "python"],
                        help="HTTP load generator (default: wrk if installed, else python)")
    parser.add_argument("--sandbox", default="bwrap",
                        help="the agents' sandbox backend, as HYAC_SANDBOX (default: bwrap)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a target is missed (full mode only)")
    args = parser.parse_args(argv)

    from benchmarks.loadgen import available_tool

    sut_cpus, load_cpus, pinning = plan_cpus()
    machine_info = machine()  # before this process is pinned
    # This process drives the CLI runs and the log consumer: it belongs with the load.
    os.sched_setaffinity(0, load_cpus)
    chosen = args.only or list(BENCHMARKS)
    started = time.perf_counter()
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    extra: dict[str, Any] = {}
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hyac-bench-") as tmp:
        ctx = Context(args.short, Path(tmp), sut_cpus, load_cpus, available_tool(args.loadgen),
                      sandbox=args.sandbox)
        for name in chosen:
            print(f"· {name} …", file=sys.stderr, flush=True)
            began = time.perf_counter()
            try:
                figures += importlib.import_module(BENCHMARKS[name]).run(ctx)
            except Exception:
                errors[name] = traceback.format_exc()
                print(errors[name], file=sys.stderr)
            timings[name] = round(time.perf_counter() - began, 1)
        if not args.only:
            for name, script in EXTRA_SCRIPTS.items():
                if not script.exists():
                    continue
                print(f"· {name} ({script.name}) …", file=sys.stderr, flush=True)
                began = time.perf_counter()
                try:
                    extra[name] = run_extra_script(name, script, ctx)
                except Exception:
                    errors[name] = traceback.format_exc()
                timings[name] = round(time.perf_counter() - began, 1)
        notes = [pinning, f"load generator: {ctx.loadgen}", f"sandbox: {ctx.sandbox}", *ctx.notes]
    results = {
        "mode": "short" if args.short else "full",
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks", *(argv or sys.argv[1:])]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.perf_counter() - started, 1),
        "timings": timings,
        "machine": machine_info,
        "tools": {"wrk": bool(shutil.which("wrk")), "taskset_equivalent": "sched_setaffinity"},
        "notes": notes,
        "figures": {f.key: f.as_json() for f in figures},
        "extra": extra,
        "errors": errors,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print_table(figures, errors, f"Hyac benchmarks ({results['mode']}, {results['seconds']} s)", notes)
    print(f"figures written to {args.json}")
    if errors:
        return 1
    if args.check and not args.short and any(f.met is False for f in figures):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
