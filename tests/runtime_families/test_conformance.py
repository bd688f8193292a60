"""The conformance suite every runtime folder must pass, on every backend that serves it.

Each runtime has one function, written in its language, doing the same things: echo the
request's JSON, write a log line, set and get a kv value, read an env variable and a
secret, raise an error from a helper (the trace must name the user's file and both lines,
and nothing of the runtime), and sleep past its timeout. The assertions are the same for
every runtime. bubblewrap serves them all; java17 runs on docker and gvisor too, from its
image. One agent per backend serves the whole module."""

from __future__ import annotations

import base64
import json
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import RunningAgent, current_runtime
from tests.runtime_families.conftest import (
    deploy_files,
    invoke_result,
    skip_unless_served,
    start_backend_agent,
)
from tests.waiting import eventually

PYTHON = '''\
import time


def fail():
    raise ValueError("conformance boom")


def main(context):
    if context.request.path == "/boom":
        return fail()
    if context.request.path == "/sleep":
        time.sleep(60)
    if context.request.path == "/cookies":
        return Response(200, {"set-cookie": ["a=1; Path=/", "b=2"], "x-several": ["one", "two"]}, "ok")
    payload = context.request.json()
    key = "conformance/" + context.function.name
    context.logger.info("conformance %s", payload["name"])
    context.kv.set(key, {"n": 41})
    return {
        "echo": payload,
        "kv": context.kv.get(key),
        "env": context.env["REGION"],
        "secret_length": len(context.secrets["API_KEY"]),
        "runtime": context.function.runtime,
        "time_left": context.remaining_time() > 0,
    }
'''

# node20 and deno: the same module (deno's is TypeScript, with the context typed loosely).
SCRIPT = '''\
function fail() {
  throw new Error("conformance boom");
}

export async function main(context/*: any*/) {
  if (context.request.path === "/boom") return fail();
  if (context.request.path === "/sleep") await new Promise((wake) => setTimeout(wake, 60000));
  if (context.request.path === "/cookies") {
    return new context.Response(200, { "set-cookie": ["a=1; Path=/", "b=2"], "x-several": ["one", "two"] }, "ok");
  }
  if (context.request.path === "/web-cookies") {  // the web platform's Response
    const headers = new Headers([["set-cookie", "a=1; Path=/"], ["set-cookie", "b=2"],
      ["x-several", "one"], ["x-several", "two"]]);
    return new Response("ok", { status: 200, headers });
  }
  const payload = context.request.json();
  const key = "conformance/" + context.function.name;
  context.logger.info("conformance %s", payload.name);
  await context.kv.set(key, { n: 41 });
  return {
    echo: payload,
    kv: await context.kv.get(key),
    env: context.env.REGION,
    secret_length: (await context.secrets.get("API_KEY")).length,
    runtime: context.function.runtime,
    time_left: context.remaining_time() > 0,
  };
}
'''

JAVA = '''\
import java.util.LinkedHashMap;
import java.util.Map;

public class Conformance {
    static Object fail() {
        throw new IllegalStateException("conformance boom");
    }

    public static Object handle(Context context) throws Exception {
        if (context.request.path.equals("/boom")) return fail();
        if (context.request.path.equals("/sleep")) Thread.sleep(60_000);
        if (context.request.path.equals("/cookies")) {  // headers are strings: a cookie a line
            return new Context.Response(200, Map.of("set-cookie", "a=1; Path=/\\nb=2",
                                                    "x-several", "one, two"), "ok");
        }
        Map<?, ?> payload = (Map<?, ?>) context.request.json();
        String key = "conformance/" + context.function.name;
        context.logger.info("conformance %s", payload.get("name"));
        context.kv.set(key, Map.of("n", 41));
        Map<String, Object> seen = new LinkedHashMap<>();
        seen.put("echo", payload);
        seen.put("kv", context.kv.get(key));
        seen.put("env", context.env.get("REGION"));
        seen.put("secret_length", context.secrets.get("API_KEY").length());
        seen.put("runtime", context.function.runtime);
        seen.put("time_left", context.remainingTime() > 0);
        return seen;
    }
}
'''


@dataclass(frozen=True)
class Implementation:
    entry: str
    source: str
    error_type: str  # the language's own error the helper raises


IMPLEMENTATIONS = {
    "python": Implementation("functions/conformance.py", PYTHON, "ValueError"),
    "node20": Implementation("functions/conformance.mjs", SCRIPT, "Error"),
    "deno": Implementation("functions/conformance.ts", SCRIPT.replace("/*: any*/", ": any"), "Error"),
    "java17": Implementation("functions/Conformance.java", JAVA, "IllegalStateException"),
}
# bubblewrap serves every runtime. docker and gvisor have no image for node and deno, and
# Python on them is what the rest of the suite runs (tests/sandbox/): java17 is run there.
CASES = [
    *(("bwrap", runtime) for runtime in ("python", "node20", "deno", "java17")),
    ("docker", "java17"), ("gvisor", "java17"),
]
SECRET = "s3cr3t-value"
PAYLOAD = {"name": "Ada", "list": [1, 2], "nested": {"ok": True}}


@dataclass
class Case:
    backend: str
    runtime: str
    implementation: Implementation
    agent: RunningAgent
    name: str


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningAgent]]:
    """One agent per backend, started when a case first needs it."""
    started: dict[str, RunningAgent] = {}
    yield started
    for agent in started.values():
        agent.kill(signal.SIGTERM)


@pytest.fixture(scope="module", params=CASES, ids=[f"{b}-{r}" for b, r in CASES])
def case(request: pytest.FixtureRequest, agents: dict[str, RunningAgent],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Case]:
    backend, family = request.param
    runtime = current_runtime() if family == "python" else family
    skip_unless_served(backend, runtime)
    if backend not in agents:
        for other in list(agents):  # the cases come grouped by backend: one agent at a time
            agents.pop(other).kill(signal.SIGTERM)
        agent = start_backend_agent(backend, tmp_path_factory.mktemp(f"conformance-{backend}"),
                                    HYAC_POOL_SIZE="0")
        with agent.client() as client:
            assert client.put("/v1/secrets/API_KEY", json={"value": SECRET}).status_code == 204
        agents[backend] = agent
    implementation = IMPLEMENTATIONS[family]
    name = "conformance-" + re.sub(r"[^a-z0-9]", "-", runtime)
    response = deploy_files(agents[backend], name, {implementation.entry: implementation.source},
                            runtime=runtime, env={"REGION": "eu"})
    assert response.status_code in (200, 201), response.text
    yield Case(backend, runtime, implementation, agents[backend], name)


def line_of(source: str, marker: str) -> int:
    return next(number for number, line in enumerate(source.splitlines(), 1) if marker in line)


def test_echo_kv_env_secret(case: Case) -> None:
    result = invoke_result(case.agent, case.name, json.dumps(PAYLOAD).encode(),
                           headers={"content-type": "application/json"})
    assert result["ok"], result
    assert json.loads(base64.b64decode(result["body_b64"])) == {
        "echo": PAYLOAD, "kv": {"n": 41}, "env": "eu", "secret_length": len(SECRET),
        "runtime": case.runtime, "time_left": True,
    }


def test_a_log_line_reaches_the_logs(case: Case) -> None:
    result = invoke_result(case.agent, case.name, json.dumps({"name": "Grace"}).encode())
    assert result["ok"], result

    def logged() -> list[dict]:
        with case.agent.client() as client:
            records = client.get("/v1/logs", params={"function": case.name}).json()
        return [r for r in records if r.get("request_id") == result["request_id"]
                and r["message"] == "conformance Grace"]

    assert eventually(logged, timeout=30)[0]["level"] == "INFO"


#: a frame of the user's code in any language's trace: `File "functions/x.py", line 3`,
#: `at fail (functions/x.mjs:3:9)`, `at X.fail(functions/X.java:3)`
FRAME = re.compile(r'(functions/[\w./-]+?)(?:", line |:)(\d+)')


def test_an_error_names_the_users_file_and_lines(case: Case) -> None:
    source, entry = case.implementation.source, case.implementation.entry
    result = invoke_result(case.agent, case.name, path="/boom")
    assert result["ok"] is False
    error = result["error"]
    assert error["type"] == case.implementation.error_type
    assert "conformance boom" in error["message"]
    trace = error["traceback"]
    frames = [(path, int(line)) for path, line in FRAME.findall(trace)]
    assert (entry, line_of(source, '"conformance boom"')) in frames, trace
    assert (entry, line_of(source, "return fail()")) in frames, trace
    assert {path for path, _ in frames} == {entry}, trace
    assert "bootstrap" not in trace.lower() and "/runtime/" not in trace, trace


def test_several_cookies_are_a_header_each(case: Case) -> None:
    # node20 and deno also answer with the web platform's Response
    web = ["/web-cookies"] if case.runtime in ("node20", "deno") else []
    for path in ["/cookies", *web]:
        answer = httpx.get(f"{case.agent.url}/default/{case.name}{path}", timeout=60)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"], path
        assert answer.headers.get_list("x-several") == ["one, two"], path
        assert answer.text == "ok"
        # the API shows them as the function sent them: a cookie a line
        result = invoke_result(case.agent, case.name, path=path)
        assert result["headers"]["set-cookie"] == "a=1; Path=/\nb=2", (path, result)


def test_a_timeout_ends_the_invocation(case: Case) -> None:
    """Last: the timed-out worker is stopped. A function of its own, with a 1 s timeout."""
    slow = f"{case.name}-slow"
    response = deploy_files(case.agent, slow, {case.implementation.entry: case.implementation.source},
                            runtime=case.runtime, env={"REGION": "eu"}, timeout=1)
    assert response.status_code in (200, 201), response.text
    result = invoke_result(case.agent, slow, status=504, path="/sleep")
    assert result["error"]["code"] == "timeout"
