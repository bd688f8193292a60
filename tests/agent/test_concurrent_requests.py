"""What many requests at once must not do: race two deploys of one function for its
version number, leave an unread exception behind a timed-out request, or drop a request
sent on a connection the agent is closing for idleness (the soak's findings,
benchmarks/README.md)."""

from __future__ import annotations

import base64
import gc
import http.client
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import AgentClient, current_runtime, start_agent
from tests.in_process import in_process_agent, run_on
from tests.waiting import eventually

DEPLOYS = 8


@pytest.fixture(scope="module")
def shared_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentClient]:
    """The agent's app in this process, shared by the module's tests (no sandbox needed)."""
    home = tmp_path_factory.mktemp("concurrent")
    with pytest.MonkeyPatch.context() as env:  # as the isolation fixture, for the module
        for key in [key for key in os.environ if key.startswith("HYAC_")]:
            if key != "HYAC_RUNTIMES_DIR":
                env.delenv(key)
        env.setenv("HYAC_DATA_DIR", str(home / "data"))
        env.setenv("HYAC_CONFIG_DIR", str(home / "config"))
        with in_process_agent(home / "data") as running:
            yield running


def _body(source: str) -> dict[str, object]:
    entry = "functions/churn.py"
    return {"entry": entry, "files_b64": {entry: base64.b64encode(source.encode()).decode()},
            "config": {"runtime": current_runtime()}}


def _deploy_all(agent: AgentClient, name: str, sources: list[str]) -> list[dict]:
    def put(source: str) -> dict:
        with agent.client() as client:
            response = client.put(f"/v1/functions/{name}", json=_body(source))
        assert response.status_code in (200, 201), response.text
        return {**response.json(), "status": response.status_code}

    with ThreadPoolExecutor(len(sources)) as pool:
        return list(pool.map(put, sources))


def test_concurrent_deploys_each_get_a_version(shared_agent: AgentClient) -> None:
    sources = [f"def main(context):\n    return {i}\n" for i in range(DEPLOYS)]
    results = _deploy_all(shared_agent, "churn", sources)
    assert sorted(r["version"] for r in results) == list(range(1, DEPLOYS + 1))
    assert all(r["status"] == 201 and r["created"] for r in results)
    # The last deploy to commit took the highest number and is the one that serves,
    # whichever of the requests was answered last.
    with shared_agent.client() as client:
        assert client.get("/v1/functions/churn").json()["active_version"] == DEPLOYS
        answer = client.post("/v1/functions/churn/invoke", json={}).json()
    assert answer["version"] == DEPLOYS
    served = next(r for r in results if r["version"] == DEPLOYS)
    assert base64.b64decode(answer["body_b64"]) == str(sources.index(
        next(s for s, r in zip(sources, results, strict=True) if r is served)
    )).encode()


def test_concurrent_deploys_of_the_same_code_share_one_version(shared_agent: AgentClient) -> None:
    source = "def main(context):\n    return 'same'\n"
    results = _deploy_all(shared_agent, "twin", [source] * DEPLOYS)
    assert {r["version"] for r in results} == {1}
    assert sorted(r["status"] for r in results) == [200] * (DEPLOYS - 1) + [201]
    with shared_agent.client() as client:
        assert len(client.get("/v1/functions/twin/versions").json()) == 1


def test_a_timeout_leaves_no_unread_exception(
    shared_agent: AgentClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A request past its timeout is answered 504 at once; the worker's record of it
    must not end as "Future exception was never retrieved" in the agent's log."""
    source = "import time\n\ndef main(context):\n    time.sleep(30)\n"
    entry = "functions/overrun.py"
    body = {"entry": entry, "files_b64": {entry: base64.b64encode(source.encode()).decode()},
            "config": {"runtime": current_runtime(), "timeout": 0.5}}
    with shared_agent.client() as client:
        assert client.put("/v1/functions/overrun", json=body).status_code == 201
        caplog.set_level(logging.ERROR, logger="asyncio")
        answer = client.post("/v1/functions/overrun/invoke", json={})
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "timeout"
    pool = shared_agent.agent.pool  # type: ignore[attr-defined]
    # The drained worker is stopped; then whatever of the request is left is garbage.
    eventually(lambda: pool.stats()["draining"] == 0)
    loop = shared_agent.transport._loop  # type: ignore[attr-defined]

    async def collect() -> int:
        return gc.collect()

    run_on(loop, collect())
    gc.collect()
    unread = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert unread == []


def test_the_agent_keeps_an_idle_connection_longer_than_clients_do(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Whoever closes an idle keep-alive connection first must be the client: when the
    server does, a request the client sends at that moment gets no answer at all. The
    agent's keep-alive outlasts httpx's (5 s), so a client of the default kind never
    sees that; before, both were 5 s and a loaded agent dropped such requests."""
    idle = httpx.Limits().keepalive_expiry or 5.0
    running = start_agent(tmp_path_factory.mktemp("keepalive") / "data", "--insecure-no-sandbox")
    try:
        host, port = running.url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.request("GET", "/v1/agent")
        assert connection.getresponse().read()
        time.sleep(idle + 1)  # the time itself is what is tested: idle past the client's
        connection.request("GET", "/v1/agent")  # on the same socket (it never reconnects)
        answer = connection.getresponse()
        assert answer.status == 401 and answer.read()
        connection.close()
    finally:
        running.kill()
