"""The gateway is served ahead of FastAPI's middleware (``AgentApp.front``): what that
middleware did for it, the front does too. A bug is a 500 with Hyac's JSON error (its
traceback in the agent's log, never in the answer), bodies over the limit are a 413, and
everything else still goes through FastAPI."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningAgent
from tests.in_process import InProcessAgent

SECRET = "the-bug-says-/srv/secret/path"


def _break(agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(agent.agent.invoker, "invoke", broken)


def test_a_bug_on_the_gateway_is_a_json_500_and_a_logged_traceback(
    api_agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    api_agent.deploy("hello", "def main(context):\n    return 'hi'\n")
    _break(api_agent, monkeypatch)
    with caplog.at_level(logging.ERROR), api_agent.client() as client:
        answer = client.post("/default/hello", json={"a": 1})
        again = client.get("/default/hello/some/path?x=1")
    for response in (answer, again):
        assert response.status_code == 500, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == "internal"
        assert SECRET not in response.text
    logged = [r for r in caplog.records if r.exc_info and SECRET in str(r.exc_info[1])]
    assert len(logged) == 2


def test_bodies_over_the_limit_are_refused_on_the_gateway_and_the_api(
    api_agent: InProcessAgent
) -> None:
    api_agent.deploy("hello", "def main(context):\n    return 'hi'\n")
    limit = api_agent.agent.config.max_body_bytes

    def chunks() -> Any:  # no content-length: the limit holds while the body streams in
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    with api_agent.client() as client:
        declared = client.post("/default/hello", content=b"x" * (limit + 1))
        streamed = client.post("/default/hello", content=chunks())
        api = client.post("/v1/functions/hello/invoke", content=b"x" * (limit * 2))
        fine = client.post("/default/hello", content=b"x" * 10)
    for response in (declared, streamed, api):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"
    assert fine.status_code == 200 and fine.text == 'hi'


def test_the_api_and_the_openapi_document_still_go_through_fastapi(
    api_agent: InProcessAgent
) -> None:
    with api_agent.client() as client:
        health = client.get("/v1/health")
        document = client.get("/openapi.json")
        missing = client.get("/v1/no-such-route/at-all")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert "/{tenant}/{function}" in document.json()["paths"]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


FORGER = '''import json, os, struct

def main(context):
    response = context.request.json()
    frame = json.dumps({"type": "result", "id": context.request.id, "ok": True,
                        "response": response}).encode()
    os.write(int(os.environ.get("HYAC_CHANNEL_FD") or 3), struct.pack(">I", len(frame)) + frame)
    return "the forged result went first"
'''


@pytest.mark.parametrize("response", [
    {"status": 200, "headers": {}, "body_b64": 12},
    {"status": 200, "headers": {}, "body_b64": ["aGk="]},
    {"status": 200, "headers": ["x"], "body_b64": ""},
    {"status": "two hundred", "headers": {}, "body_b64": ""},
], ids=["body-number", "body-list", "headers-list", "status-word"])
def test_a_result_of_the_wrong_shape_from_a_worker_is_a_500_and_the_agent_serves_on(
    agent: RunningAgent, response: dict[str, Any]
) -> None:
    """The code in a sandbox can write to its worker's channel: what it sends is
    checked where the gateway's answer is built, and never answered as it came."""
    agent.deploy("forger", FORGER)
    agent.deploy("hello", "def main(context):\n    return 'hi'\n")
    body = base64.b64encode(json.dumps(response).encode()).decode()
    with httpx.Client(base_url=agent.url, timeout=30) as client:
        forged = client.post("/default/forger", json=response)
        after = client.get("/default/hello")
    with agent.client() as client:  # the invoke API answers the result as JSON
        api = client.post("/v1/functions/forger/invoke", json={"body_b64": body})
    for answer in (forged, api):
        assert answer.status_code == 500, answer.text
        assert answer.json()["error"]["code"] == "internal"
    assert after.status_code == 200 and after.text == "hi"


def _raw_request(url: str, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a hand-made HTTP/1.1 request; what came back before the agent closed or
    stopped answering."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for part in body_parts:
                sock.sendall(part)
        except OSError:  # the agent answered and closed before the body was all sent
            pass
        answer = b""
        sock.settimeout(5)
        try:
            while b"\r\n\r\n" not in answer or len(answer) < 2048:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (TimeoutError, OSError):
            pass
    return answer


def test_a_small_content_length_beside_a_chunked_body_does_not_pass_the_limit(
    tmp_path: Path,
) -> None:
    """The body limit trusts a Content-Length only when nothing else frames the body: a
    request that declares a few bytes and then sends a chunked body over the limit is
    refused, whichever header comes first, and the function never sees that body."""
    from tests.conftest import start_agent

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    running = start_agent(tmp_path / "data", env={"HYAC_MAX_BODY_BYTES": "4096"})
    try:
        running.deploy("size", "def main(context):\n    return str(len(context.request.body))\n")
        chunk = b"x" * 4096
        body = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 4 + [b"0\r\n\r\n"]
        for headers in (b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n",
                        b"Transfer-Encoding: chunked\r\nContent-Length: 10\r\n"):
            head = (b"POST /default/size HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                    b"Connection: close\r\n\r\n")
            answer = _raw_request(running.url, head, body)
            status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b""
            assert status in (b"400", b"413"), answer[:300]
            assert b"16384" not in answer
        with httpx.Client(base_url=running.url, timeout=30) as client:
            fine = client.post("/default/size", content=b"x" * 100)
        assert fine.status_code == 200 and fine.text == "100"
    finally:
        running.kill(signal.SIGTERM)
