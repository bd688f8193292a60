"""The API turns careless requests away with a 4xx and a JSON error that says what was
wrong, before anything is stored or any worker sees them."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import AgentClient, current_runtime

GOOD = "def main(context):\n    return 'fine'\n"


def bundle(**config: object) -> dict:
    return {
        "entry": "functions/keep.py",
        "files_b64": {"functions/keep.py": base64.b64encode(GOOD.encode()).decode()},
        "config": {"runtime": current_runtime(), **config},
    }


def error_of(answer, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.text
    return answer.json()["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("raw, problem", [
    ('{"timeout": 1e999}', "config.timeout: must be a finite number"),
    ('{"retry_backoff_max": Infinity}', "config.retry_backoff_max: must be a finite number"),
    ('{"retries": 99999999999999999999999}', "config.retries: out of range"),
    ('{"memory": 107374182400000000000000000000}', "config.memory: out of range"),
])
def test_numbers_the_store_cannot_keep_are_refused(
    api_agent: AgentClient, raw: str, problem: str
) -> None:
    api_agent.deploy("keep", GOOD)
    body = bundle()
    text = (
        '{"entry": "functions/keep.py", "files_b64": '
        f'{{"functions/keep.py": "{body["files_b64"]["functions/keep.py"]}"}}, "config": {raw}}}'
    )
    with api_agent.client() as client:
        answer = client.put("/v1/functions/keep", content=text,
                            headers={"content-type": "application/json"})
        assert error_of(answer, 400)["message"] == problem
        listing = client.get("/v1/functions")  # what is stored still reads back
        assert listing.status_code == 200, listing.text
        assert [f["active_version"] for f in listing.json()] == [1]
        rollback = client.post("/v1/functions/keep/rollback",
                               content='{"version": 99999999999999999999999}',
                               headers={"content-type": "application/json"})
        assert error_of(rollback, 400)["message"] == "version: out of range"


def test_memory_too_small_for_any_sandbox_is_refused_at_deploy(api_agent: AgentClient) -> None:
    with api_agent.client() as client:
        answer = client.put("/v1/functions/tiny", json=bundle(memory=1024))
        assert "at least 16 MiB" in error_of(answer, 400)["message"]
        assert client.get("/v1/functions").json() == []


def test_invalid_base64_never_reaches_the_worker(api_agent: AgentClient) -> None:
    api_agent.deploy("keep", GOOD)
    answer = api_agent.invoke("keep", body_b64="%%% not base64")
    assert error_of(answer, 400) == {"code": "invalid_input", "message": "body_b64: not valid base64"}
    fine = api_agent.invoke("keep", body_b64=base64.b64encode(b"{}").decode())
    assert fine.status_code == 200 and fine.json()["ok"], fine.text


def test_wrong_method_and_unknown_route(api_agent: AgentClient) -> None:
    api_agent.deploy("keep", GOOD)
    with api_agent.client() as client:
        wrong = client.patch("/v1/functions/keep")
        assert error_of(wrong, 405)["allowed"] == ["DELETE", "GET", "PUT"]
        assert error_of(client.get("/v1/functions/keep/invoke"), 405)["allowed"] == ["POST"]
        missing = error_of(client.post("/v1/nothing/here"), 404)
        assert missing["message"] == "no API route POST /v1/nothing/here (see /docs)"
        # the gateway still serves every other tenant
        assert client.get("/default/keep").text == "fine"


@pytest.mark.parametrize("content, content_type, message", [
    ("{bad", "application/json",
     "the request body is not valid JSON: Expecting property name enclosed in double quotes "
     "(at character 1)"),
    ('{"entry": "x"}', "application/x-www-form-urlencoded",
     "the request body must be a JSON object with Content-Type: application/json"),
    ("[]", "application/json", "the request body must be a JSON object"),
    ("", "application/json", "the request needs a JSON object as its body"),
])
def test_a_body_that_is_no_json_object(
    api_agent: AgentClient, content: str, content_type: str, message: str
) -> None:
    with api_agent.client() as client:
        answer = client.put("/v1/functions/keep", content=content,
                            headers={"content-type": content_type})
    assert error_of(answer, 422) == {"code": "invalid_input", "message": message}


def test_names_with_a_slash_are_refused_by_name(api_agent: AgentClient) -> None:
    with api_agent.client() as client:
        secret = client.put("/v1/secrets/a%2Fb", json={"value": "x"})
        assert "invalid secret name 'a/b'" in error_of(secret, 400)["message"]
        env = client.delete("/v1/env/..%2Ffunctions%2Fkeep")
        assert "invalid env name '../functions/keep'" in error_of(env, 400)["message"]


def test_too_large_names_the_limit_a_user_sets(api_agent: AgentClient) -> None:
    payload = base64.b64encode(b"x" * (7 << 20)).decode()
    answer = api_agent.invoke("keep", body_b64=payload)
    assert error_of(answer, 413)["message"] == (
        "the request body is larger than 6 MiB (HYAC_MAX_BODY_BYTES)"
    )

    def chunks():  # type: ignore[no-untyped-def]  # no content-length: counted as it streams
        yield b'{"body_b64": "'
        for _ in range(12):
            yield b"eHh4" * (1 << 18)
        yield b'"}'

    with api_agent.client() as client:
        streamed = client.post("/v1/functions/keep/invoke", content=chunks(),
                               headers={"content-type": "application/json"})
    assert error_of(streamed, 413)["message"] == (
        "the request body is larger than 6 MiB (HYAC_MAX_BODY_BYTES)"
    )
