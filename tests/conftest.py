"""Shared fixtures: every test gets its own data and config dirs and a clean environment;
integration tests get a real agent process listening on a real port."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # Tests stop CLI followers (hyac dev, logs -f) with Ctrl-C. A run started in the
    # background by a non-interactive shell has SIGINT ignored, and every child would
    # inherit that: give children the default instead.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Read here, once: the isolation fixture clears HYAC_* for every test.
    if os.environ.get("HYAC_STRICT_SKIPS") == "1":
        from tests.strict_skips import StrictSkips, allowed_patterns

        config.pluginmanager.register(StrictSkips(allowed_patterns()), "hyac-strict-skips")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that fails while an agent of its own runs shows what that agent was doing:
    its stacks (SIGUSR1, written to its log) and the end of its log."""
    report = yield
    if report.failed and call.when == "call":
        agents = {id(v): v for v in getattr(item, "funcargs", {}).values()
                  if isinstance(v, RunningAgent) and v.process.poll() is None}
        for running in agents.values():
            report.sections.append((f"agent {running.url} (pid {running.process.pid}): its "
                                    f"stacks and last log lines", running.stacks_and_log()))
        # A module's browser pages (WATCHED): the requests they sent that had no answer
        # yet, and their last events, so a view left "Loading…" names what it waited
        # for or what went wrong. Last: a shortened report keeps its end.
        for watched in getattr(item.module, "WATCHED", ()):
            waiting = watched.unfinished()
            if waiting:
                report.sections.append(("a browser page: requests still waiting, last events",
                                        "\n".join(waiting)))
    return report


AGENT_LOG_LINES = 300


@pytest.fixture(scope="session", autouse=True)
def no_containers_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end of the session, remove the sandbox containers of agents this session
    started: an agent cleans up its run dir's containers when it starts again, and the
    agents that tests SIGKILL never do (the host would keep them, exited, for good)."""
    yield
    if shutil.which("docker") is None:
        return
    base = str(tmp_path_factory.getbasetemp())
    listed = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=org.hyac.sandbox.run_dir", "--format",
         '{{.ID}} {{.Label "org.hyac.sandbox.run_dir"}}'],
        capture_output=True, text=True, timeout=60, check=False,
    )
    ours = [line.split(" ", 1)[0] for line in listed.stdout.splitlines()
            if " " in line and line.split(" ", 1)[1].startswith(base + os.sep)]
    if ours:
        subprocess.run(["docker", "rm", "-f", *ours], capture_output=True, timeout=120,
                       check=False)


@pytest.fixture(autouse=True)
def isolation(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Own data/config dirs per test; no HYAC_* setting leaks in from the caller."""
    home = tmp_path_factory.mktemp("home")
    for key in list(os.environ):
        if key.startswith("HYAC_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HYAC_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("HYAC_CONFIG_DIR", str(home / "config"))
    return home


requires_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed (apt-get install bubblewrap); the sandbox cannot be tested",
)


@dataclass
class AgentClient:
    """How tests talk to an agent's API: ``client()`` as its owner, ``http()`` as anyone."""

    url: str
    token: str
    data_dir: Path

    def _transport(self) -> httpx.BaseTransport | None:
        return None  # real HTTP

    def http(self, token: str | None = None, tenant: str | None = None) -> httpx.Client:
        """A client sending ``token`` (None: none at all) and ``tenant``'s header."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if tenant:
            headers["X-Hyac-Tenant"] = tenant
        return httpx.Client(base_url=self.url, headers=headers, timeout=60,
                            transport=self._transport())

    def client(self, tenant: str | None = None) -> httpx.Client:
        return self.http(self.token, tenant)

    def deploy(self, name: str, source: str, tenant: str | None = None, **config: object) -> dict:
        entry = f"functions/{name}.py"
        body = {
            "entry": entry,
            "files_b64": {entry: base64.b64encode(source.encode()).decode()},
            "config": {"runtime": current_runtime(), **config},
        }
        with self.client(tenant) as client:
            response = client.put(f"/v1/functions/{name}", json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def invoke(self, name: str, tenant: str | None = None, **request: object) -> httpx.Response:
        with self.client(tenant) as client:
            return client.post(f"/v1/functions/{name}/invoke", json=request)


@dataclass
class RunningAgent(AgentClient):
    """``hyac-agent serve`` as a process of its own, on a real port."""

    process: subprocess.Popen[bytes]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 20) -> None:
        """Send ``sig`` and wait for the agent to exit. An agent still running after
        ``timeout`` seconds is a failure that shows what it was doing (its stacks and the
        end of its log), and is killed so no later test inherits it."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            pass
        shown = self.stacks_and_log()
        self.process.kill()
        self.process.wait(timeout=20)
        pytest.fail(f"the agent (pid {self.process.pid}) was still running {timeout:g} s "
                    f"after signal {sig}; its stacks and last log lines:\n{shown}",
                    pytrace=False)

    def stacks_and_log(self) -> str:
        """The end of the agent's log, then every thread's stack and every event-loop
        task (SIGUSR1: the agent writes them to its log), the main thread's stack last:
        a report cut short keeps its head and its end."""
        before = self.log_path.stat().st_size
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(1)  # faulthandler writes at once; a loaded host may lag
        with self.log_path.open("rb") as log:
            earlier = log.read(before).decode(errors="replace").splitlines()
            dump = log.read().decode(errors="replace")
        cut = dump.find("asyncio tasks (")
        if cut < 0:
            tasks = "(no task list within 1 s: the event loop did not run its handler)"
        else:
            dump, tasks = dump[:cut], dump[cut:]
        threads = dump.strip().split("\n\n")
        current = [block for block in threads if block.startswith("Current thread")]
        ordered = [block for block in threads if block not in current] + [tasks] + current
        tail = earlier[-AGENT_LOG_LINES // 3:]
        return "\n".join([*tail, "---- stacks ----", "\n\n".join(ordered)])


def current_runtime() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def start_agent(data_dir: Path, *extra: str, env: dict[str, str] | None = None,
                wrapper: tuple[str, ...] = ()) -> RunningAgent:
    """Start `hyac-agent serve` on a free port and wait until it answers; ``wrapper``: a
    command that sets something up and then execs the agent's (so the pid stays)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"agent-{time.monotonic_ns()}.log"
    state = data_dir / "agent.json"
    state.unlink(missing_ok=True)
    process_env = {**os.environ, "HYAC_DATA_DIR": str(data_dir), **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "hyac_agent", "serve", "--port", "0", *extra],
            stdout=log, stderr=subprocess.STDOUT, env=process_env, start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"agent exited with {process.returncode}: {log_path.read_text()}")
        if state.exists():
            info = json.loads(state.read_text())
            if info.get("pid") == process.pid:
                return RunningAgent(info["url"], info["token"], data_dir, process, log_path, list(extra))
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=30)  # reaped here: not a later test's "still running" warning
    raise RuntimeError(f"agent did not start: {log_path.read_text()}")


@pytest.fixture
def agent(isolation: Path) -> Iterator[RunningAgent]:
    """A real agent with the bubblewrap sandbox, on a free port."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    running = start_agent(Path(os.environ["HYAC_DATA_DIR"]))
    yield running
    running.kill(signal.SIGTERM)


@pytest.fixture
def api_agent(isolation: Path) -> Iterator[AgentClient]:
    """The agent's app in this process, unsandboxed and without a port (tests/in_process.py):
    for API tests of answers (validation, errors, authentication), not of isolation."""
    from tests.in_process import in_process_agent

    with in_process_agent(Path(os.environ["HYAC_DATA_DIR"])) as running:
        yield running
