"""What every benchmark shares: CPU pinning, a real agent on a free port with its own data
dir, deploying over the API, process-tree memory, and the figure record.

A figure is always a ratio against a baseline measured in the same run on the same
machine, so that a busy or slow machine moves both sides together.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
PAGE = os.sysconf("SC_PAGE_SIZE")

ECHO_SOURCE = "def main(context):\n    return context.request.json()\n"
ECHO_BODY = b'{"hello": "world", "n": 42, "items": [1, 2, 3]}'


# figures -------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured value, its same-run baseline and their ratio."""

    key: str
    label: str
    value: float
    unit: str
    baseline: float
    baseline_name: str
    ratio: float
    target: str = ""
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def figure(
    key: str,
    label: str,
    value: float,
    unit: str,
    baseline: float,
    baseline_name: str,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    **details: Any,
) -> Figure:
    """A figure whose ratio is value / baseline, with an optional target on the ratio."""
    ratio = value / baseline if baseline else float("inf")
    target, met = "", None
    if at_most is not None:
        target, met = f"≤ {at_most:g}×", ratio <= at_most
    elif at_least is not None:
        target, met = f"≥ {at_least:g}×", ratio >= at_least
    return Figure(key, label, value, unit, baseline, baseline_name, ratio, target, met, details)


# the run's context ---------------------------------------------------------------------


@dataclass
class Context:
    short: bool
    workdir: Path
    #: CPUs of the system under test (agent, bare app) and of the load generator
    sut_cpus: set[int]
    load_cpus: set[int]
    loadgen: str  # "wrk" or "python"
    #: the agent's sandbox backend (HYAC_SANDBOX); bwrap unless asked otherwise
    sandbox: str = "bwrap"
    notes: list[str] = field(default_factory=list)

    def pick(self, short: Any, full: Any) -> Any:
        return short if self.short else full

    def scratch(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))


def plan_cpus() -> tuple[set[int], set[int], str]:
    """System under test on the first allowed CPU, load generator on the second."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return set(allowed), set(allowed), "one CPU only: the load generator shares it with the agent"
    note = f"agent/bare app on CPU {allowed[0]}, load generator on CPU {allowed[1]}"
    return {allowed[0]}, {allowed[1]}, note


def pinned(cpus: set[int]) -> Callable[[], None]:
    """A preexec_fn that pins the child (and everything it starts) to ``cpus``."""

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


# processes and memory ------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as fh:
                found.extend(int(p) for p in fh.read().split())
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children(child))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes ``pids`` have used so far (gone ones: 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> list[str]:
    try:
        return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL; its leftover descendants (started by it) go too."""
    if process.poll() is None:
        kin = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for pid in kin:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


# agent ---------------------------------------------------------------------------------


@dataclass
class Agent:
    url: str
    token: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def async_client(self, timeout: float = 60, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout, **kwargs)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def gateway(self, name: str, tenant: str = "default") -> str:
        return f"{self.url}/{tenant}/{name}"

    def pool_stats(self) -> dict[str, int]:
        with self.client() as client:
            return client.get("/v1/agent").json()["extra"]["pool"]

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def deploy_body(name: str, source: str, **config: Any) -> dict[str, Any]:
    entry = f"functions/{name}.py"
    return {
        "entry": entry,
        "files_b64": {entry: base64.b64encode(source.encode()).decode()},
        "config": {"runtime": RUNTIME, **config},
    }


def deploy(agent: Agent, name: str, source: str, **config: Any) -> dict[str, Any]:
    with agent.client() as client:
        response = client.put(f"/v1/functions/{name}", json=deploy_body(name, source, **config))
    if response.status_code not in (200, 201):
        raise RuntimeError(f"deploying {name} failed: {response.status_code} {response.text}")
    return response.json()


async def deploy_many(agent: Agent, sources: dict[str, str], concurrency: int = 8) -> None:
    """Deploy many functions over the API at once (setup, not measured)."""
    import asyncio

    gate = asyncio.Semaphore(concurrency)
    async with agent.async_client(timeout=300) as client:

        async def one(name: str, source: str) -> None:
            async with gate:
                response = await client.put(f"/v1/functions/{name}", json=deploy_body(name, source))
            if response.status_code not in (200, 201):
                raise RuntimeError(f"deploying {name} failed: {response.status_code} {response.text}")

        await asyncio.gather(*(one(n, s) for n, s in sources.items()))


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYAC_")}
    env.update(extra)
    return env


@contextlib.contextmanager
def running_agent(ctx: Context, name: str, env: dict[str, str] | None = None) -> Iterator[Agent]:
    """A fresh ``hyac-agent serve --port 0`` pinned to the system-under-test CPU, with its
    own data dir; stopped (with its sandboxes) however the block ends."""
    home = ctx.scratch(name)
    data_dir = home / "data"
    data_dir.mkdir()
    process_env = clean_env(
        HYAC_DATA_DIR=str(data_dir),
        HYAC_CONFIG_DIR=str(home / "config"),
        # Nothing is reaped while it is being measured.
        HYAC_WORKER_IDLE_TIMEOUT="3600",
        HYAC_SANDBOX=ctx.sandbox,
        **(env or {}),
    )
    log_path = home / "agent.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hyac_agent", "serve", "--port", "0"],
            stdout=log, stderr=subprocess.STDOUT, env=process_env, cwd=home,
            preexec_fn=pinned(ctx.sut_cpus), start_new_session=True,
        )
    try:
        state = data_dir / "agent.json"
        deadline = time.monotonic() + 60
        agent: Agent | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"agent exited with {process.returncode}: {log_path.read_text()}")
            if state.exists():
                with contextlib.suppress(ValueError):
                    info = json.loads(state.read_text())
                    if info.get("pid") == process.pid:
                        agent = Agent(info["url"], info["token"], data_dir, process, log_path, process_env)
                        break
            time.sleep(0.05)
        if agent is None:
            raise RuntimeError(f"agent did not start within 60s: {log_path.read_text()}")
        yield agent
    finally:
        stop_process(process)


def free_port() -> int:
    """A port nothing listens on now (the caller binds it next; retried if taken meanwhile)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(url: str) -> bool:
    try:
        return httpx.post(url, content=ECHO_BODY, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class BareApp:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def running_bare_app(ctx: Context) -> Iterator[BareApp]:
    """The baseline: a plain Starlette echo app started as its docs say
    (``uvicorn bare_app:app --port N``), pinned like the agent."""
    home = ctx.scratch("bare")
    script = Path(sys.executable).parent / "uvicorn"
    uvicorn = [str(script)] if script.exists() else [sys.executable, "-m", "uvicorn"]
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        with (home / "bare.log").open("wb") as log:
            process = subprocess.Popen(
                [*uvicorn, "bare_app:app", "--host", "127.0.0.1", "--port", str(port),
                 "--no-access-log"],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO / "benchmarks",
                preexec_fn=pinned(ctx.sut_cpus), start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 30
            while process.poll() is None and not answers(url):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bare app did not start: {(home / 'bare.log').read_text()}")
                time.sleep(0.05)
            if process.poll() is None:
                yield BareApp(url, process)
                return
        finally:
            stop_process(process)
    raise RuntimeError(f"bare app did not start: {(home / 'bare.log').read_text()}")


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# statistics ----------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def time_command(argv: Sequence[str], runs: int, env: dict[str, str] | None = None,
                 cwd: Path | None = None, check: bool = True) -> list[float]:
    """Wall times (s) of ``runs`` runs of a command, process start to exit."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, timeout=120)
        samples.append(time.perf_counter() - started)
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}"
            )
    return samples


def hyac_command() -> list[str]:
    """The ``hyac`` console script next to this interpreter, as a user runs it.

    An installed package has its bytecode compiled (pip does it at install); an editable
    install under ``PYTHONDONTWRITEBYTECODE`` would compile every module on every start,
    which no user pays, so the project's packages are compiled once first."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("hyac_cli", "hyac_common"):
        compileall.compile_dir(root / package, quiet=1)
    script = Path(sys.executable).parent / "hyac"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hyac_cli"]
