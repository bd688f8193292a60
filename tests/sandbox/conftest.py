"""Fixtures for the escape suite: one real agent per sandbox backend, shared by the tests
of that backend (starting one per attack would dominate the suite's time), and helpers
that assert the attack failed and the agent still serves."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import RunningAgent, start_agent

BACKENDS = ("bwrap", "docker", "gvisor")
CANARY = "def main(context):\n    return {'alive': True}\n"
VICTIM = "victim"


# What the agent checks before any sandbox runs, or what gvisor does exactly as the docker
# backend it is built on (output limits: Docker's log driver; timeouts: the container's
# removal): run on bwrap and docker only, so the gvisor run spends its time on the attacks
# that meet its kernel.
NOT_ON_GVISOR = frozenset({
    "test_dotdot_bundle_paths_are_refused", "test_symlink_in_bundle_is_just_a_file",
    "test_kv_of_another_tenant", "test_huge_return_value", "test_stdout_flood",
    "test_raw_fd_flood", "test_cpu_spin_past_the_timeout",
    "test_function_that_never_reads_its_input",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [item for item in items if "[gvisor" in item.nodeid
               and getattr(item, "originalname", "") in NOT_ON_GVISOR]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def backend_missing(name: str) -> str | None:
    """Why ``name`` cannot be tested here (None when it can)."""
    if name == "bwrap":
        return None if shutil.which("bwrap") else "bubblewrap is not installed (apt-get install bubblewrap)"
    if name == "gvisor":
        from hyac_agent.sandbox.gvisor import GvisorBackend

        reason = GvisorBackend.unavailable_reason()
        if reason:
            return reason
    try:
        out = subprocess.run(
            ["docker", "image", "inspect", "hyac/python:3.11"], capture_output=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"docker CLI unusable ({exc}); run scripts/setup-docker.sh"
    if out.returncode != 0:
        return "no Docker daemon or no runtime image; run scripts/setup-docker.sh"
    return None


@dataclass
class Target:
    backend: str
    agent: RunningAgent
    counter: int = 0

    def name(self, stem: str) -> str:
        self.counter += 1
        return f"{stem.replace('_', '-')}-{self.counter}"

    def run(self, source: str, tenant: str | None = None, query: dict | None = None,
            body: bytes = b"", **config: object) -> httpx.Response:
        """Deploy ``source`` under a fresh name and invoke it once."""
        name = self.name("attack")
        config.setdefault("timeout", 10)
        self.agent.deploy(name, source, tenant=tenant, **config)
        self.last = name
        return self.agent.invoke(
            name, tenant=tenant, query=query or {}, body_b64=base64.b64encode(body).decode()
        )

    def value(self, source: str, **kwargs: object) -> object:
        answer = self.run(source, **kwargs)
        assert answer.status_code == 200, answer.text
        payload = answer.json()
        assert payload["ok"], payload
        return json.loads(base64.b64decode(payload["body_b64"]))

    def assert_serving(self) -> None:
        """The agent is alive and runs the victim tenant's functions (a fresh one, on a
        fresh sandbox); attacks run as the default tenant."""
        assert self.agent.process.poll() is None, "the agent died"
        name = self.name("canary")
        self.agent.deploy(name, CANARY, tenant=VICTIM)
        answer = self.agent.invoke(name, tenant=VICTIM)
        assert answer.status_code == 200 and answer.json()["ok"], answer.text

    def system_log(self, function: str | None = None) -> list[str]:
        with self.agent.client() as client:
            lines = client.get(
                "/v1/logs", params={"function": function or self.last, "limit": 1000}
            ).json()
        return [line["message"] for line in lines if line["stream"] == "system"]


def _start_target(backend: str, factory: pytest.TempPathFactory, **env_extra: str) -> Target:
    reason = backend_missing(backend)
    if reason:
        # Loud on purpose: CI installs every backend, so this must not pass silently.
        pytest.skip(f"SANDBOX BACKEND {backend!r} NOT TESTED: {reason}")
    data_dir = factory.mktemp(f"escape-{backend}") / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    env.update(HYAC_DATA_DIR=str(data_dir), HYAC_SANDBOX=backend, **env_extra)
    return Target(backend, start_agent(data_dir, "--sandbox", backend, env=env))


@pytest.fixture(scope="session", params=BACKENDS)
def session_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    started = _start_target(request.param, tmp_path_factory)
    yield started
    started.agent.kill(signal.SIGTERM)


@pytest.fixture(scope="session")
def rlimit_session_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """bubblewrap as on a host (or in a container) where the agent cannot write cgroups:
    HYAC_CGROUPS=off makes the agent behave exactly as if none were writable."""
    started = _start_target("bwrap", tmp_path_factory, HYAC_CGROUPS="off")
    yield started
    started.agent.kill(signal.SIGTERM)


@pytest.fixture
def rlimit_target(rlimit_session_target: Target) -> Iterator[Target]:
    yield rlimit_session_target
    rlimit_session_target.assert_serving()


@pytest.fixture
def target(session_target: Target) -> Iterator[Target]:
    yield session_target
    session_target.assert_serving()
