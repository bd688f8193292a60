"""The java17 runtime, as a user meets it: init, javac against the generated Context,
deploy (compiled in the sandbox), invoke, logs, every kind of host call, a background task
with progress, memory, attacks on the sandbox, and Maven dependencies resolved offline.
What every runtime does alike (echo, logs, kv, env, secrets, the user's lines in a stack
trace, timeouts) is in test_conformance.py. One agent per backend serves the module:
bubblewrap for everything, docker and gvisor (from the hyac/java image) for what their
containers change: invoke and logs, host calls, the memory limit and the attacks."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hyac_cli.javastubs import build_context_java, runtime_stub_path
from tests.conftest import RunningAgent
from tests.e2e.test_cli_tour import HYAC
from tests.runtime_families.conftest import (
    deploy_files,
    invoke_result,
    requires_runtime,
    skip_unless_served,
    start_backend_agent,
)
from tests.waiting import eventually

pytestmark = requires_runtime("java17")

MAVEN_REPO = Path("/usr/share/maven-repo")
LANG3 = "org.apache.commons:commons-lang3:3.12.0"
#: tests of what the sandbox changes run on every backend; the others on bubblewrap
EVERY_BACKEND = pytest.mark.parametrize("agent", ["bwrap", "docker", "gvisor"], indirect=True)
BWRAP = pytest.mark.parametrize("agent", ["bwrap"], indirect=True)


@pytest.fixture(scope="module")
def agent(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    backend = request.param
    skip_unless_served(backend, "java17")
    # bubblewrap keeps a warm pool of Java workers: it hides the JVM's start, which is
    # what it is for (tested below). Elsewhere each function starts its own JVM.
    pool = {"HYAC_POOL_SIZE": "1", "HYAC_POOL_RUNTIMES": "java17"} if backend == "bwrap" \
        else {"HYAC_POOL_SIZE": "0"}
    running = start_backend_agent(backend, tmp_path_factory.mktemp(f"java-{backend}"), **pool)
    yield running
    running.kill(signal.SIGTERM)


def deploy(agent: RunningAgent, name: str, files: dict[str, str], entry: str = "",
           **config: object) -> httpx.Response:
    return deploy_files(agent, name, files, entry, runtime="java17", **config)


invoke = invoke_result


def body_json(result: dict) -> object:
    assert result["ok"], result
    return json.loads(base64.b64decode(result["body_b64"]))


def cli(agent: RunningAgent, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HYAC_URL": agent.url,
           "HYAC_TOKEN": agent.token}
    return subprocess.run([*HYAC, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env=env)


def test_the_stub_is_generated_from_the_runtime() -> None:
    """api/Context.java (what javac and IDEs see, and what the runtime compiles against)
    is exactly what the generator makes of the runtime's own Context class."""
    assert runtime_stub_path().read_text() == build_context_java()
    assert "public KV kv;" not in build_context_java()  # final fields stay final
    assert "public final KV kv;" in build_context_java()


@BWRAP
def test_init_javac_deploy_invoke_logs(agent: RunningAgent, tmp_path: Path) -> None:
    init = cli(agent, "init", "demo", "--runtime", "java17", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    project = tmp_path / "demo"
    hello = project / "functions" / "Hello.java"
    stub = project / "typings" / "java" / "Context.java"
    assert hello.is_file() and stub.is_file()
    # javac itself type-checks `context.` against the generated declaration...
    javac = ["javac", "-d", str(tmp_path / "out"), "-sourcepath", str(stub.parent),
             "-implicit:none"]
    typo = tmp_path / "Typo.java"
    typo.write_text("public class Typo { public static Object handle(Context c) "
                    "{ return c.kv.gett(\"a\"); } }\n")
    checked = subprocess.run([*javac, str(hello), str(typo)], capture_output=True, text=True,
                             timeout=120)
    # ...and refuses a member the context does not have: the one error is Typo's.
    assert checked.returncode != 0
    assert checked.stderr.startswith(f"{typo}:1: error: cannot find symbol"), checked.stderr
    assert "1 error" in checked.stderr and "Hello.java" not in checked.stderr

    deployed = cli(agent, "deploy", "--json", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    assert [r["name"] for r in json.loads(deployed.stdout)] == ["hello"]
    called = cli(agent, "invoke", "hello", "--data", '{"name": "Ada"}', cwd=project)
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout) == {"hello": "Ada"}

    def logged() -> bool:  # polled through the API: one CLI process per poll is slow
        with agent.client() as client:
            records = client.get("/v1/logs", params={"function": "hello"}).json()
        return any(r["message"] == "greeting Ada" for r in records)

    eventually(logged, timeout=60)
    logs = cli(agent, "logs", "hello", "--json", cwd=project)
    assert logs.returncode == 0, logs.stderr
    assert any(json.loads(line).get("message") == "greeting Ada"
               for line in logs.stdout.splitlines() if line.strip())


@BWRAP
def test_a_compile_error_is_one_line_and_deploys_nothing(agent: RunningAgent) -> None:
    source = ("public class Broken {\n"
              "    public static Object handle(Context context) {\n"
              "        return context.kv.get(\"a\")\n"
              "    }\n"
              "}\n")
    response = deploy(agent, "broken", {"functions/Broken.java": source})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "syntax_error"
    assert error["message"] == "functions/Broken.java:3: ';' expected"
    with agent.client() as client:
        assert client.get("/v1/functions/broken").status_code == 404
    # .hyac/classes/ is where the agent puts the classes it compiled: not the user's.
    forged = deploy(agent, "broken", {"functions/Broken.java": source.replace(")\n", ");\n"),
                                      ".hyac/classes/Broken.class": "\xca\xfe"},
                    entry="functions/Broken.java")
    assert forged.status_code == 400 and ".hyac/" in forged.json()["error"]["message"]


HOST_CALLS = """\
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class Calls {
    static int divide(int a, int b) {
        return a / b;
    }

    public static Object handle(Context context) {
        if (context.request.path.equals("/boom")) return divide(1, 0);
        if (context.task != null) {  // the background task enqueued below
            context.task.progress(0.5, "halfway");
            return Map.of("attempt", context.task.attempt);
        }
        if (context.request.path.equals("/echo")) return context.request.json();
        Map<String, Object> seen = new LinkedHashMap<>();
        context.kv.set("java/count", Map.of("n", 41));
        seen.put("kv", context.kv.get("java/count"));
        seen.put("kv_list", context.kv.list("java/"));
        seen.put("kv_deleted", context.kv.delete("java/count"));
        seen.put("kv_gone", context.kv.get("java/count", "none"));
        context.storage.put("java/a.txt", "bytes".getBytes(StandardCharsets.UTF_8), "text/plain");
        seen.put("storage", new String(context.storage.get("java/a.txt"), StandardCharsets.UTF_8));
        seen.put("storage_size", context.storage.stat("java/a.txt").get("size"));
        seen.put("storage_deleted", context.storage.delete("java/a.txt"));
        context.db.execute("CREATE TABLE IF NOT EXISTS jt (k TEXT, v INTEGER)");
        context.db.execute("INSERT INTO jt VALUES (?, ?)", "x", 7);
        seen.put("db", context.db.fetchall("SELECT k, v FROM jt WHERE k = ?", "x"));
        seen.put("env", context.env.get("REGION"));
        seen.put("secret_length", context.secrets.get("API_KEY").length());
        seen.put("secrets", context.secrets.list());
        Context.InvokeResponse answer = context.invoke("calls", "POST", "/echo",
                "{'ping': 1}".replace((char) 39, (char) 34).getBytes(StandardCharsets.UTF_8));
        seen.put("invoke", List.of(answer.status, answer.json()));
        try {
            context.invoke("no-such-function", null);
        } catch (Context.HostCallError err) {
            seen.put("invoke_error", err.code);
        }
        seen.put("task", context.enqueue("calls", Map.of("steps", 2)));
        context.logger.warning("calls done for %s", context.function.name);
        System.out.println("printed by " + context.function.runtime);
        return seen;
    }
}
"""


@EVERY_BACKEND
def test_host_calls_of_every_kind_and_a_background_task(agent: RunningAgent) -> None:
    with agent.client() as client:
        assert client.put("/v1/secrets/API_KEY", json={"value": "s3cr3t-value"}).status_code == 204
    response = deploy(agent, "calls", {"functions/Calls.java": HOST_CALLS}, env={"REGION": "eu"})
    assert response.status_code == 201, response.text
    result = invoke(agent, "calls")
    seen = body_json(result)
    assert isinstance(seen, dict)
    task_id = seen.pop("task")
    assert seen == {
        "kv": {"n": 41}, "kv_list": ["java/count"], "kv_deleted": True, "kv_gone": "none",
        "storage": "bytes", "storage_size": 5, "storage_deleted": True,
        "db": [{"k": "x", "v": 7}], "env": "eu", "secret_length": 12, "secrets": ["API_KEY"],
        "invoke": [200, {"ping": 1}], "invoke_error": "not_found",
    }

    def task_done() -> dict | None:
        with agent.client() as client:
            task = client.get(f"/v1/tasks/{task_id}").json()
        return task if task["status"] in ("succeeded", "failed") else None

    task = eventually(task_done, timeout=90)
    assert task["status"] == "succeeded", task
    assert task["progress_message"] == "halfway"
    assert json.loads(base64.b64decode(task["result"]["body_b64"])) == {"attempt": 1}

    def lines() -> list[dict]:
        with agent.client() as client:
            response = client.get("/v1/logs", params={"function": "calls"})
        return [r for r in response.json() if r.get("request_id") == result["request_id"]]

    logged = eventually(lambda: (found := lines()) and len(found) >= 2 and found, timeout=30)
    messages = {(r.get("level"), r["message"]) for r in logged}
    assert ("WARNING", "calls done for calls") in messages
    assert any(m == "printed by java17" for _level, m in messages)


@EVERY_BACKEND
def test_an_exception_shows_only_the_users_java_lines(agent: RunningAgent) -> None:
    """Calls divides by zero on /boom, in a helper method (deployed by the test above:
    the same bundle again is no new version, and its worker may still be warm). The
    conformance suite finds the user's lines in a trace; this checks, in Java's own form,
    that nothing else is there (no frame of the JDK's reflection or of the bootstrap)."""
    response = deploy(agent, "calls", {"functions/Calls.java": HOST_CALLS}, env={"REGION": "eu"})
    assert response.status_code in (200, 201), response.text
    lines = HOST_CALLS.splitlines()
    divide = next(i for i, line in enumerate(lines, 1) if "return a / b;" in line)
    call = next(i for i, line in enumerate(lines, 1) if "return divide(1, 0);" in line)
    result = invoke(agent, "calls", path="/boom")
    assert result["ok"] is False
    error = result["error"]
    assert error["type"] == "ArithmeticException" and error["message"] == "/ by zero"
    assert error["traceback"].splitlines() == [
        "java.lang.ArithmeticException: / by zero",
        f"  at Calls.divide(functions/Calls.java:{divide})",
        f"  at Calls.handle(functions/Calls.java:{call})",
    ]


@EVERY_BACKEND
def test_workers_start_from_the_prebuilt_bootstrap(agent: RunningAgent) -> None:
    """The agent builds the bootstrap once (hyac_agent/sandbox/prebuilt.py) and workers,
    in a container too, start from its jar, with the class data sharing archive their
    own JVM dumped: the JVM's command is the class, not the source-file launcher that
    compiled Bootstrap.java at every start."""
    source = ("import java.lang.management.ManagementFactory;\n"
              "public class Started {\n"
              "    public static Object handle(Context context) {\n"
              "        return System.getProperty(\"sun.java.command\") + \"|\"\n"
              "                + System.getProperty(\"java.class.path\") + \"|\" + String.join(\" \",\n"
              "                ManagementFactory.getRuntimeMXBean().getInputArguments());\n"
              "    }\n"
              "}\n")
    assert deploy(agent, "started", {"functions/Started.java": source}).status_code == 201
    result = invoke(agent, "started")
    assert result["ok"], result
    command, classpath, flags = base64.b64decode(result["body_b64"]).decode().split("|")
    assert command == "Bootstrap"
    assert classpath.startswith("/runtime/.prebuilt/") and classpath.endswith("/bootstrap.jar")
    build = classpath.rsplit("/", 1)[0]
    archive = [f for f in flags.split() if f.startswith("-XX:SharedArchiveFile=")]
    assert len(archive) == 1 and archive[0].startswith(f"-XX:SharedArchiveFile={build}/")


@EVERY_BACKEND
def test_a_heap_exhausted_is_out_of_memory(agent: RunningAgent) -> None:
    """The JVM's heap, not the sandbox's memory limit, runs out first: the function gets
    Java's OutOfMemoryError (reported as out_of_memory), on docker and gvisor too, where
    the container's limit is the function's memory."""
    # The heap is half the function's memory: 128 MiB gives a 64 MiB heap, which 200 MiB
    # of arrays cannot fit in.
    hog = ("import java.util.ArrayList;\n"
           "public class Hog {\n"
           "    public static Object handle(Context context) {\n"
           "        ArrayList<byte[]> kept = new ArrayList<>();\n"
           "        for (int i = 0; i < 200; i++) kept.add(new byte[1024 * 1024]);\n"
           "        return kept.size();\n"
           "    }\n"
           "}\n")
    assert deploy(agent, "hog", {"functions/Hog.java": hog}, memory=128 * 1024 * 1024).status_code == 201
    error = invoke(agent, "hog", status=502)["error"]
    assert error["code"] == "out_of_memory" and "OutOfMemoryError" in error["message"]


@BWRAP
@pytest.mark.skipif(not (MAVEN_REPO / "org/apache/commons/commons-lang3/3.12.0").is_dir(),
                    reason="Debian's commons-lang3 is not installed (apt-get install "
                    "libcommons-lang3-java; scripts/setup-runtimes.sh does)")
def test_maven_dependencies_resolve_offline_and_conflicts_are_refused(agent: RunningAgent) -> None:
    source = ("import org.apache.commons.lang3.StringUtils;\n"
              "public class Lang {\n"
              "    public static Object handle(Context context) {\n"
              "        return StringUtils.reverse(\"hyac\");\n"
              "    }\n"
              "}\n")
    response = deploy(agent, "lang", {"functions/Lang.java": source}, requirements=[LANG3])
    assert response.status_code == 201, response.text
    assert response.json()["dependencies"]["packages"] == 1
    result = invoke(agent, "lang")
    assert result["ok"], result
    assert base64.b64decode(result["body_b64"]) == b"cayh"

    conflict = deploy(agent, "lang", {"functions/Lang.java": source},
                      requirements=[LANG3, "org.apache.commons:commons-lang3:3.11"])
    assert conflict.status_code == 400
    assert conflict.json()["error"]["code"] == "dependency_conflict"
    missing = deploy(agent, "lang", {"functions/Lang.java": source},
                     requirements=["org.example:not-there:1.0"])
    assert missing.status_code == 422
    assert "not in the agent's Maven repositories" in missing.json()["error"]["message"]
    refused = deploy(agent, "lang", {"functions/Lang.java": source},
                     requirements=["https://repo.example/evil.jar"])
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "dependency_refused"


ESCAPES = """\
import java.io.File;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

public class Escape {
    static String attempt(java.util.concurrent.Callable<Object> what) {
        try {
            return "reached: " + what.call();
        } catch (Throwable err) {
            return "refused";
        }
    }

    public static Object handle(Context context) {
        Map<String, Object> seen = new LinkedHashMap<>();
        seen.put("agent_data", attempt(() -> Files.list(Path.of(context.env.get("DATA"))).count()));
        seen.put("write_code", attempt(() -> Files.writeString(Path.of("/code/x.txt"), "x")));
        seen.put("write_runtime", attempt(() -> Files.writeString(Path.of("/runtime/x.txt"), "x")));
        seen.put("loopback", attempt(() -> {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", Integer.parseInt(context.env.get("PORT"))), 2000);
                return "connected";
            }
        }));
        seen.put("env_token", System.getenv().keySet().stream().anyMatch(k -> k.contains("TOKEN")));
        // An image has a /root of its own: what counts is that nothing there can be read.
        String[] home = new File("/root").list();
        seen.put("home_files", home != null && home.length > 0);
        return seen;
    }
}
"""


@EVERY_BACKEND
def test_a_java_function_reaches_nothing_outside_its_sandbox(agent: RunningAgent) -> None:
    """The escape suite's attacks that apply to a JVM: the agent's data, writing its own
    code or runtime, the host's loopback (the agent's own port), the agent's environment
    and home."""
    port = agent.url.rsplit(":", 1)[1]
    response = deploy(agent, "escape", {"functions/Escape.java": ESCAPES},
                      env={"DATA": str(agent.data_dir), "PORT": port})
    assert response.status_code == 201, response.text
    seen = body_json(invoke(agent, "escape"))
    assert seen == {
        "agent_data": "refused", "write_code": "refused", "write_runtime": "refused",
        "loopback": "refused", "env_token": False, "home_files": False,
    }, seen


def _artifact(repo: Path, group: str, name: str, version: str, deps: str = "") -> None:
    folder = repo.joinpath(*group.split("."), name, version)
    folder.mkdir(parents=True)
    (folder / f"{name}-{version}.jar").write_bytes(f"{group}:{name}:{version}".encode())
    (folder / f"{name}-{version}.pom").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><properties><v>2.0</v></properties>'
        f"<dependencies>{deps}</dependencies></project>")


def test_the_offline_resolver_follows_poms_and_refuses_conflicts(tmp_path: Path) -> None:
    """Transitive compile/runtime dependencies (a version from a property, one left to a
    parent's dependencyManagement), test and optional ones left out; two versions of one
    artifact anywhere in the graph refused, naming the paths."""
    from hyac_agent.deps import maven
    from hyac_common.errors import DependencyConflict

    dep = "<dependency><groupId>g</groupId><artifactId>{}</artifactId>{}</dependency>"
    _artifact(tmp_path, "g", "app", "1.0", dep.format("lib", "<version>${v}</version>")
              + dep.format("managed", "") + dep.format("tested", "<scope>test</scope>")
              + dep.format("opt", "<version>1</version><optional>true</optional>"))
    _artifact(tmp_path, "g", "lib", "2.0")
    _artifact(tmp_path, "g", "lib", "1.0")
    _artifact(tmp_path, "g", "managed", "3.1")
    lock = maven.resolve(["g:app:1.0"], [tmp_path])
    assert [line.split(" ")[0] for line in lock.splitlines()] == [
        "g:app:1.0", "g:lib:2.0", "g:managed:3.1"]
    env = tmp_path / "env"
    maven.install(lock, env, [tmp_path])
    assert sorted(p.name for p in (env / "lib").iterdir()) == [
        "g.app-1.0.jar", "g.lib-2.0.jar", "g.managed-3.1.jar"]
    with pytest.raises(DependencyConflict, match="g:lib: 1.0 .*and 2.0 \\(from g:app:1.0 -> g:lib:2.0\\)"):
        maven.resolve(["g:lib:1.0", "g:app:1.0"], [tmp_path])


@BWRAP
def test_the_warm_pool_serves_a_new_java_function(agent: RunningAgent) -> None:
    """A generic JVM waits in the pool; a new function's first call takes it (a hit)."""
    def pool() -> dict:
        with agent.client() as client:
            return client.get("/v1/agent").json()["extra"]["pool"]

    source = ("public class Warm {\n"
              "    public static Object handle(Context context) {\n"
              "        return context.function.name;\n"
              "    }\n"
              "}\n")
    assert deploy(agent, "warm", {"functions/Warm.java": source}).status_code == 201
    eventually(lambda: pool()["generic"] >= 1, timeout=120)
    hits = pool()["hits"]
    result = invoke(agent, "warm")
    assert result["ok"] and base64.b64decode(result["body_b64"]) == b"warm"
    assert pool()["hits"] == hits + 1
