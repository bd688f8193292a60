"""Every client mistake gets a 4xx with a JSON error, and nothing stored is damaged.

The answers are the app's: most tests run it in process (``api_agent``, no sandbox); the
body limit while a request streams in is checked over real HTTP."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import AgentClient, RunningAgent, current_runtime
from tests.in_process import in_process_agent

GOOD = "def main(context):\n    return 'fine'\n"


def deploy_raw(agent: AgentClient, name: str, body: object) -> httpx.Response:
    with agent.client() as client:
        return client.put(f"/v1/functions/{name}", json=body)


def bundle(files: dict[str, str], entry: str, **config: object) -> dict:
    return {
        "entry": entry,
        "files_b64": {p: base64.b64encode(c.encode()).decode() for p, c in files.items()},
        "config": {"runtime": current_runtime(), **config},
    }


@pytest.mark.parametrize(
    "name",
    ["..", "a..b", "UPPER", "-lead", "trail-", "x" * 64, "caf\u00e9", "sp ace", "a.b"],
)
def test_invalid_function_names_are_refused(api_agent: AgentClient, name: str) -> None:
    answer = deploy_raw(api_agent, name, bundle({"functions/x.py": GOOD}, "functions/x.py"))
    assert answer.status_code in (400, 404), answer.text
    if answer.status_code == 400:
        assert answer.json()["error"]["code"] == "invalid_input"
        assert "invalid function name" in answer.json()["error"]["message"]


def test_name_with_path_separator_never_reaches_a_function(api_agent: AgentClient) -> None:
    with api_agent.client() as client:
        answer = client.put("/v1/functions/a%2Fb", json=bundle({"functions/x.py": GOOD}, "functions/x.py"))
    assert answer.status_code in (400, 404)
    assert "error" in answer.json()


def test_bad_bundles_are_refused_and_leave_the_old_version(api_agent: AgentClient) -> None:
    api_agent.deploy("keep", GOOD)
    cases = {
        "missing entry": bundle({"functions/other.py": GOOD}, "functions/keep.py"),
        "path traversal": bundle({"../evil.py": GOOD, "functions/keep.py": GOOD}, "functions/keep.py"),
        "absolute path": bundle({"/etc/evil.py": GOOD, "functions/keep.py": GOOD}, "functions/keep.py"),
        "syntax error": bundle({"functions/keep.py": "def main(context):\n    return (\n"}, "functions/keep.py"),
        "unknown runtime": bundle({"functions/keep.py": GOOD}, "functions/keep.py", runtime="cobol1.0"),
        "bad timeout": bundle({"functions/keep.py": GOOD}, "functions/keep.py", timeout=-1),
        "unknown setting": bundle({"functions/keep.py": GOOD}, "functions/keep.py", colour="red"),
    }
    for label, body in cases.items():
        answer = deploy_raw(api_agent, "keep", body)
        assert 400 <= answer.status_code < 500, (label, answer.text)
        assert answer.json()["error"]["message"], label
    bad_b64 = deploy_raw(api_agent, "keep", {"entry": "functions/keep.py", "files_b64": {"functions/keep.py": "***"}})
    assert bad_b64.status_code == 400
    assert "base64" in bad_b64.json()["error"]["message"]

    syntax = deploy_raw(api_agent, "keep", cases["syntax error"]).json()["error"]
    assert syntax["code"] == "syntax_error" and syntax["line"] == 2
    assert syntax["message"].startswith("functions/keep.py:")

    with api_agent.client() as client:
        versions = client.get("/v1/functions/keep/versions").json()
    assert [v["version"] for v in versions] == [1]
    assert base64.b64decode(api_agent.invoke("keep").json()["body_b64"]) == b"fine"


def test_function_that_fails_to_load(api_agent: AgentClient) -> None:
    api_agent.deploy("nomain", "def handler(context):\n    return 1\n")
    answer = api_agent.invoke("nomain")
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "function_load_error"
    assert "main" in answer.json()["error"]["message"]


def test_unknown_function_and_tenant(api_agent: AgentClient) -> None:
    assert api_agent.invoke("ghost").status_code == 404
    with api_agent.http() as public:
        answer = public.get("/nobody/ghost")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    with api_agent.client(tenant="Bad Tenant") as client:
        assert client.get("/v1/functions").status_code == 400


def test_body_over_the_limit_is_413(agent: RunningAgent) -> None:
    agent.deploy("sink", GOOD)
    big = b"x" * (7 * 1024 * 1024)
    with httpx.Client(base_url=agent.url, timeout=60) as public:
        answer = public.post("/default/sink", content=big)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "payload_too_large"

        def chunks():  # no content-length: the limit holds while streaming too
            for _ in range(8):
                yield b"y" * (1024 * 1024)

        streamed = public.post("/default/sink", content=chunks())
        assert streamed.status_code == 413


def test_invoke_api_body_over_the_limit_is_413(
    isolation: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HYAC_MAX_BODY_BYTES counts the body itself, also when the API carries it in base64."""
    monkeypatch.setenv("HYAC_MAX_BODY_BYTES", "2000")
    with in_process_agent(Path(os.environ["HYAC_DATA_DIR"])) as small:
        small.deploy("sink", GOOD)
        fits = base64.b64encode(b"x" * 2000).decode()
        assert small.invoke("sink", method="POST", body_b64=fits).status_code == 200
        over = base64.b64encode(b"x" * 3000).decode()
        for mode in ("sync", "async"):
            with small.client() as client:
                answer = client.post(f"/v1/functions/sink/invoke?mode={mode}",
                                     json={"method": "POST", "body_b64": over})
            assert answer.status_code == 413, answer.text
            error = answer.json()["error"]
            assert error["code"] == "payload_too_large"
            assert "HYAC_MAX_BODY_BYTES" in error["message"]


def test_authentication_is_required(api_agent: AgentClient) -> None:
    with api_agent.http() as anonymous:
        assert anonymous.get("/v1/functions").status_code == 401
        wrong = anonymous.get("/v1/functions", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        assert anonymous.get("/v1/health").json()["status"] == "ok"


def test_malformed_json_is_422_with_json_body(api_agent: AgentClient) -> None:
    with api_agent.client() as client:
        answer = client.put("/v1/functions/x", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_input"
