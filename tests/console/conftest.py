"""A real agent for the console's tests (one per module: starting one per test would
dominate), and a browser-less client that signs in as the page does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest

from tests.conftest import AgentClient, RunningAgent, start_agent
from tests.sandbox.conftest import BACKENDS, backend_missing

COOKIE = "hyac_console"


def agent_on(backend: str, factory: pytest.TempPathFactory) -> RunningAgent:
    reason = backend_missing(backend)
    if reason:
        pytest.skip(f"sandbox backend {backend!r} not tested: {reason}")
    data_dir = factory.mktemp(f"console-{backend}") / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    env["HYAC_DATA_DIR"] = str(data_dir)
    return start_agent(data_dir, "--sandbox", backend, env=env)


@pytest.fixture(scope="module")
def console_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    """Sign-in and sessions do not depend on the sandbox: one backend is enough."""
    running = agent_on("bwrap", tmp_path_factory)
    yield running
    running.kill(signal.SIGTERM)


@pytest.fixture(scope="module", params=BACKENDS)
def backend_agent(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    """What the console shows of functions, logs and tasks, under each sandbox backend."""
    running = agent_on(request.param, tmp_path_factory)
    yield running
    running.kill(signal.SIGTERM)


@dataclass
class Browser:
    """What a page holds after signing in: the cookie (sent by the browser) and the CSRF
    token (read from /console/session)."""

    url: str
    cookie: str
    csrf: str
    set_cookie: str

    def request(self, method: str, path: str, *, csrf: bool | str = True,
                tenant: str | None = None, **kwargs: object) -> httpx.Response:
        """``csrf``: send the session's token (True), none (False) or this one."""
        headers = {"Cookie": f"{COOKIE}={self.cookie}"}
        if csrf:
            headers["X-Hyac-CSRF"] = self.csrf if csrf is True else str(csrf)
        if tenant:
            headers["X-Hyac-Tenant"] = tenant
        return httpx.request(method, self.url + path, headers=headers, timeout=60,
                             **kwargs)  # type: ignore[arg-type]


def login_code(agent: RunningAgent, token: str | None = None) -> str:
    answer = httpx.post(f"{agent.url}/v1/console/login-codes", timeout=30,
                        headers={"Authorization": f"Bearer {token or agent.token}"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["code"])


def exchange(agent: RunningAgent, **body: str) -> httpx.Response:
    return httpx.post(f"{agent.url}/console/session", json=body, timeout=30)


def sign_in(agent: RunningAgent, token: str | None = None) -> Browser:
    answer = exchange(agent, code=login_code(agent, token))
    assert answer.status_code == 200, answer.text
    jar: SimpleCookie = SimpleCookie()
    jar.load(answer.headers["set-cookie"])
    return Browser(agent.url, jar[COOKIE].value, answer.json()["csrf"],
                   answer.headers["set-cookie"])


def give_cookie(context: Any, agent: RunningAgent, session: Browser) -> None:
    """Hand a signed-in ``session``'s cookie to a Playwright browser ``context``, as the
    browser that signed in holds it."""
    context.add_cookies([{"name": COOKIE, "value": session.cookie, "url": agent.url,
                          "httpOnly": True, "sameSite": "Strict"}])


def make_user(agent: AgentClient, name: str, tenant: str, role: str) -> str:
    """A user with ``role`` in ``tenant`` (made if need be), and a new token of theirs."""
    with agent.client(tenant) as owner:
        if owner.get(f"/v1/tenants/{tenant}").status_code == 404:
            assert owner.post("/v1/tenants", json={"name": tenant}).status_code == 201
        assert owner.put(f"/v1/users/{name}", json={"role": role}).status_code == 200
        made = owner.post("/v1/tokens", json={"user": name, "name": "console test"})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def hyac(agent: RunningAgent, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, against the local agent of ``agent``'s data dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    env.update(HYAC_DATA_DIR=str(agent.data_dir), HYAC_CONFIG_DIR=os.environ["HYAC_CONFIG_DIR"],
               NO_COLOR="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "hyac_cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)
