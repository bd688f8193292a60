"""Profile the warm invoke path: a real agent under gateway load, sampled with py-spy.

    python -m benchmarks.profile_invoke [--seconds 15] [--connections 16] [--out DIR]

Writes collapsed stacks (``agent.txt``, ``worker.txt``; flamegraph.pl or speedscope read
them) and prints where the samples went: the busiest functions by own time and by
inclusive time, and the share of samples under a few suspect calls. Needs py-spy
(``pip install py-spy``) and the right to ptrace the agent (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (  # noqa: E402
    ECHO_BODY,
    ECHO_SOURCE,
    Context,
    deploy,
    descendants,
    plan_cpus,
    running_agent,
)
from benchmarks.loadgen import available_tool, run_load  # noqa: E402

#: substrings of a frame that mark work worth a line of its own in the summary
SUSPECTS = {
    "pydantic validation/serialisation": ("pydantic", "model_validate", "model_dump", "__init__ (pydantic"),
    "base64": ("b64encode", "b64decode"),
    "json encode/decode": ("json/encoder", "json/decoder", "json/__init__", "dumps (", "loads ("),
    "fastapi dependency/param solving": ("solve_dependencies", "request_params_to_args", "_get_value"),
    "fastapi serialize_response": ("serialize_response", "jsonable_encoder"),
    "body limit middleware": ("BodyLimitMiddleware",),
    "logging": ("logging/__init__",),
    "database (sqlalchemy/sqlite)": ("sqlalchemy", "sqlite3"),
    "thread handoff (to_thread/executor/threadpool)": ("to_thread", "run_in_executor", "run_in_threadpool",
                                                      "concurrent/futures"),
    "new processes": ("subprocess", "_execute_child", "fork_exec"),
    "secrets/request id": ("token_hex", "secrets.py"),
    "channel framing": ("channel.py",),
    "wait_for/shield": ("wait_for (asyncio", "shield (asyncio"),
}


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def record(pid: int, seconds: int, out: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
         "--format", "raw", "--output", str(out), "--nonblocking", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


#: leaf frames where a thread waits rather than works (py-spy's --nonblocking mode cannot
#: always tell): the event loop in epoll, idle pool threads, a blocking socket read
IDLE_LEAVES = (
    "Runner.run (asyncio/runners.py", "asyncio_run (uvicorn/_compat.py", "Condition.wait (threading.py",
    "_worker (concurrent/futures/thread.py", "EpollSelector.select", "Channel._read_exactly",
    "select (selectors.py",
    # a `def` function's worker: its threads waiting for a job, its main thread in the
    # blocking read of the channel
    "SyncPool._serve (_hyac_worker.py", "Channel.recv_nowait (_hyac_protocol.py",
)


def summarise(path: Path, title: str, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    suspects: collections.Counter[str] = collections.Counter()
    lines: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():  # a frame name may hold a line break
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("thread (")]
        if not frames:
            continue
        leaf = frames[-1]
        if leaf.startswith(IDLE_LEAVES):
            idle += count
            continue
        total += count
        own[leaf] += count
        for frame in reversed(frames):  # the innermost frame of ours or of the web stack
            if any(part in frame for part in ("hyac_agent/", "_hyac_", "bootstrap.py", "fastapi/",
                                              "starlette/", "uvicorn/", "anyio/")):
                lines[frame] += count
                break
        for frame in set(frames):
            inclusive[frame] += count
        for name, needles in SUSPECTS.items():
            if any(needle in frame for frame in frames for needle in needles):
                suspects[name] += count
    if not total:
        print(f"{title}: no busy samples")
        return
    print(f"\n== {title}: {total} busy samples ({idle} idle samples left out); shares of busy time")
    print("-- own time (leaf frame)")
    for frame, count in own.most_common(top):
        print(f"{count / total:6.1%}  {frame}")
    print("-- own time by the innermost line of hyac, fastapi, starlette, uvicorn or anyio")
    for frame, count in lines.most_common(top):
        print(f"{count / total:6.1%}  {frame}")
    print("-- inclusive time")
    for frame, count in inclusive.most_common(top):
        print(f"{count / total:6.1%}  {frame}")
    print("-- busy samples with a suspect frame on the stack")
    for name, count in suspects.most_common():
        print(f"{count / total:6.1%}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="keep the stacks here")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sandbox", default="bwrap")
    args = parser.parse_args(argv)
    sut, load, _ = plan_cpus()
    os.sched_setaffinity(0, load)
    out = args.out or Path(tempfile.mkdtemp(prefix="hyac-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hyac-profile-") as tmp:
        ctx = Context(False, Path(tmp), sut, load, available_tool(None), sandbox=args.sandbox)
        with running_agent(ctx, "profile") as agent:
            deploy(agent, "echo", ECHO_SOURCE)
            url = agent.gateway("echo")
            run_load([url], ECHO_BODY, args.connections, 2, load, ctx.loadgen)  # warm
            workers = [p for p in descendants(agent.pid) if "python" in Path(f"/proc/{p}/comm").read_text()]
            result: dict[str, object] = {}
            loader = threading.Thread(target=lambda: result.update(load=run_load(
                [url], ECHO_BODY, args.connections, args.seconds + 2, load, ctx.loadgen)))
            loader.start()
            spies = [record(agent.pid, args.seconds, out / "agent.txt", ["--threads"])]
            if workers:
                spies.append(record(workers[-1], args.seconds, out / "worker.txt", ["--threads"]))
            for spy in spies:
                _, err = spy.communicate()
                if spy.returncode != 0:
                    print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
            loader.join()
    print(f"load during the profile: {result.get('load')}")
    for name in ("agent", "worker"):
        path = out / f"{name}.txt"
        if path.exists():
            summarise(path, f"{name} ({path})", args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
