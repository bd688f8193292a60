"""A real agent per module for the tenancy suite (or, for tests of the API's answers
alone, the agent's app in the test process), and helpers to make users and tokens."""

from __future__ import annotations

import base64
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import AgentClient, current_runtime, start_agent
from tests.in_process import in_process_agent

# Read at import time: the autouse isolation fixture clears HYAC_* for each test.
RUNTIMES_DIR = os.environ.get("HYAC_RUNTIMES_DIR")


def agent_env() -> dict[str, str]:
    return {"HYAC_RUNTIMES_DIR": RUNTIMES_DIR} if RUNTIMES_DIR else {}


@dataclass
class Platform:
    """An agent plus the users and tokens a test made on it."""

    agent: AgentClient
    tokens: dict[str, str] = field(default_factory=dict)

    def http(self, token: str | None = None, tenant: str | None = None) -> httpx.Client:
        return self.agent.http(token or self.agent.token, tenant)

    def owner(self, tenant: str | None = None) -> httpx.Client:
        return self.http(None, tenant)

    def tenant(self, name: str, **body: object) -> None:
        with self.owner() as client:
            answer = client.post("/v1/tenants", json={"name": name, **body})
            assert answer.status_code in (201, 409), answer.text

    def user(self, name: str, tenant: str, role: str) -> str:
        """Add ``name`` to ``tenant`` with ``role``; return a token scoped to it."""
        with self.owner(tenant) as client:
            answer = client.put(f"/v1/users/{name}", json={"role": role})
            assert answer.status_code == 200, answer.text
            made = client.post("/v1/tokens", json={"user": name, "tenant": tenant})
            assert made.status_code == 201, made.text
        token = made.json()["token"]
        self.tokens[f"{name}@{tenant}"] = token
        return token

    def deploy(self, name: str, source: str, tenant: str, token: str | None = None,
               **config: object) -> httpx.Response:
        entry = f"functions/{name}.py"
        body = {"entry": entry, "files_b64": {entry: base64.b64encode(source.encode()).decode()},
                "config": {"runtime": current_runtime(), **config}}
        with self.http(token, tenant) as client:
            return client.put(f"/v1/functions/{name}", json=body)

    def invoke(self, name: str, tenant: str, token: str | None = None,
               **request: object) -> httpx.Response:
        with self.http(token, tenant) as client:
            return client.post(f"/v1/functions/{name}/invoke", json=request)


def body(answer: httpx.Response) -> bytes:
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["ok"], result
    return base64.b64decode(result["body_b64"])


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One bwrap agent shared by a module's tests (each test uses its own tenants)."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    home = tmp_path_factory.mktemp("tenancy")
    running = start_agent(home / "data", "--sandbox", "bwrap", env=agent_env())
    yield Platform(running)
    running.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def api_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The agent's app in this process, unsandboxed, shared by a module's tests: for tests
    of who may call what and what the API answers, not of isolation."""
    home = tmp_path_factory.mktemp("tenancy-api")
    with pytest.MonkeyPatch.context() as env:  # as the isolation fixture, for the module
        for key in [key for key in os.environ if key.startswith("HYAC_")]:
            env.delenv(key)
        for key, value in {**agent_env(), "HYAC_DATA_DIR": str(home / "data"),
                           "HYAC_CONFIG_DIR": str(home / "config")}.items():
            env.setenv(key, value)
        with in_process_agent(home / "data") as running:
            yield Platform(running)
