"""The unsandboxed mode's guard (runtimes/python/_hyac_guard.py), driven as the agent
drives a worker started by ``--insecure-no-sandbox``: ``HYAC_GUARD=1`` and a private
``TMPDIR``. Each refusal names what was refused; ordinary functions still work.

The guard is an accident guard, not a security boundary: these tests show that it
catches honest mistakes, not that it stops an attacker.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.python_worker.test_bootstrap import Worker, body_of

NOTE = "(unsandboxed mode guard; this is not a security boundary)"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One guarded worker for the module; each test's request picks an action."""
    root = tmp_path_factory.mktemp("guard")
    code = root / "code"
    (code / "functions").mkdir(parents=True)
    (code / "functions" / "helper.py").write_text("VALUE = 'helped'\n")
    (code / "data.json").write_text('{"x": 1}')
    (code / "functions" / "probe.py").write_text(textwrap.dedent(PROBE))
    temp = root / "tmp"
    temp.mkdir()
    worker = Worker(sys.executable, code, {"HYAC_GUARD": "1", "TMPDIR": str(temp)})
    worker.init("functions/probe.py")
    ready = worker.startup()
    assert ready["type"] == "ready", ready
    worker.temp = temp  # type: ignore[attr-defined]
    yield worker
    worker.close()


PROBE = """
    import json, os, tempfile, datetime

    def main(context):
        action = context.request.query["do"]
        arg = context.request.query.get("arg", "")
        if action == "open":
            with open(arg) as fh:
                return fh.read(100)
        if action == "write":
            with open(arg, "w") as fh:
                fh.write("x")
            return "written"
        if action == "listdir":
            return sorted(os.listdir(arg))
        if action == "remove":
            os.remove(arg)
            return "removed"
        if action == "subprocess":
            import subprocess
            return subprocess.run(["true"]).returncode
        if action == "system":
            return os.system("true")
        if action == "exec":
            os.execv("/bin/true", ["true"])
        if action == "fork":
            return os.fork()
        if action == "connect":
            import socket
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", int(arg)))
            finally:
                s.close()
            return "connected"
        if action == "bind":
            import socket
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", 0))
            finally:
                s.close()
            return "bound"
        if action == "resolve":
            import socket
            return socket.getaddrinfo("localhost", 80)[0][4]
        if action == "ctypes":
            import ctypes
            return ctypes.CDLL("libc.so.6").getpid()
        if action == "normal":
            context.kv.set("k", {"n": 1})
            with open(os.path.join(os.path.dirname(__file__), "..", "data.json")) as fh:
                data = json.load(fh)
            from helper import VALUE
            import httpx, pydantic  # installed packages
            with tempfile.NamedTemporaryFile("w", delete=False) as fh:
                fh.write("scratch")
            with open(fh.name) as back:
                scratch = back.read()
            os.remove(fh.name)
            when = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc).isoformat()
            return {"kv": context.kv.get("k"), "data": data, "helper": VALUE,
                    "packages": [httpx.__name__, pydantic.__name__], "scratch": scratch,
                    "when": when, "dumped": json.dumps({"a": [1, 2]})}
        raise ValueError(action)
"""


def run(worker: Worker, action: str, arg: str = "") -> dict[str, Any]:
    return worker.call(None, method="GET", query={"do": action, "arg": arg})


def refused(result: dict[str, Any], what: str) -> None:
    assert not result["ok"], result
    error = result["error"]
    assert error["type"] == "PermissionError", error
    assert error["message"] == f"hyac: {what} is not allowed {NOTE}", error["message"]


def test_normal_function_works_under_the_guard(guarded: Worker) -> None:
    value = json.loads(body_of(run(guarded, "normal")))
    assert value == {
        "kv": {"n": 1}, "data": {"x": 1}, "helper": "helped",
        "packages": ["httpx", "pydantic"], "scratch": "scratch",
        "when": "2026-01-02T00:00:00+00:00", "dumped": '{"a": [1, 2]}',
    }
    assert guarded.kv == {"k": {"n": 1}}


@pytest.mark.parametrize("path", ["/etc/passwd", "/etc/../etc/hostname", "/proc/self/environ"])
def test_reading_outside_the_allowed_dirs_is_refused(guarded: Worker, path: str) -> None:
    refused(run(guarded, "open", path), f"opening {path}")


def test_reading_through_a_symlink_out_of_the_temp_dir_is_refused(guarded: Worker) -> None:
    link = guarded.temp / "sneaky"  # type: ignore[attr-defined]
    link.symlink_to("/etc/passwd")
    refused(run(guarded, "open", str(link)), f"opening {link}")


def test_writing_outside_the_temp_dir_is_refused(guarded: Worker) -> None:
    target = guarded.code_dir / "functions" / "probe.py"
    refused(run(guarded, "write", str(target)), f"writing {target}")
    assert "def main" in target.read_text()
    refused(run(guarded, "remove", str(target)), f"removing {target}")
    assert target.exists()


def test_listing_another_dir_is_refused(guarded: Worker) -> None:
    refused(run(guarded, "listdir", "/root"), "listing /root")
    listed = json.loads(body_of(run(guarded, "listdir", str(guarded.code_dir))))
    assert "functions" in listed


@pytest.mark.parametrize(
    ("action", "what"),
    [
        ("subprocess", "starting a subprocess"),
        ("system", "running a shell command (os.system)"),
        ("exec", "replacing the process (os.exec*)"),
        ("fork", "forking the process"),
    ],
)
def test_starting_programs_is_refused(guarded: Worker, action: str, what: str) -> None:
    refused(run(guarded, action), what)


def test_network_is_refused(guarded: Worker) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        refused(run(guarded, "connect", str(port)), f"connecting a socket to 127.0.0.1:{port}")
    refused(run(guarded, "bind"), "binding a socket to 127.0.0.1:0")
    refused(run(guarded, "resolve"), "looking up localhost")


def test_ctypes_is_refused(guarded: Worker) -> None:
    result = run(guarded, "ctypes")
    assert not result["ok"]
    assert result["error"]["type"] == "PermissionError"
    assert "with ctypes is not allowed" in result["error"]["message"]


def test_the_worker_serves_on_after_refusals(guarded: Worker) -> None:
    run(guarded, "subprocess")
    assert json.loads(body_of(run(guarded, "normal")))["helper"] == "helped"


def test_no_guard_without_the_flag(tmp_path: Path) -> None:
    """Sandboxed workers (bwrap, docker) are not slowed by a hook they do not need."""
    code = tmp_path / "code"
    (code / "functions").mkdir(parents=True)
    (code / "functions" / "probe.py").write_text(textwrap.dedent(PROBE))
    worker = Worker(sys.executable, code, {})
    try:
        worker.init("functions/probe.py")
        assert worker.startup()["type"] == "ready"
        assert body_of(run(worker, "open", "/etc/hostname"))
    finally:
        worker.close()


AGENT_FUNCTION = """
import datetime, json

def main(context):
    if context.request.query.get("peek"):
        return open("/etc/passwd").read()
    # modules of the worker's interpreter, C extensions among them, imported after the
    # guard is on (the agent's own packages are not the interpreter's: a venv's are not)
    import decimal, sqlite3
    context.kv.set("seen", 1)
    context.storage.put("guarded.txt", b"kept")
    return {"kv": context.kv.get("seen"), "storage": context.storage.get("guarded.txt").decode(),
            "modules": [str(decimal.Decimal("1.10") * 2),
                        sqlite3.connect(":memory:").execute("select 6 * 7").fetchone()[0]],
            "json": json.dumps([1]), "day": datetime.date(2026, 12, 3).isoformat()}
"""


def test_unsandboxed_agent_runs_guarded_workers(api_agent: Any) -> None:
    """Through the agent's unsandboxed backend: kv and storage host calls work, and a
    refusal reaches the caller as the function's error, naming what was refused."""
    api_agent.deploy("guarded", AGENT_FUNCTION)
    answer = api_agent.invoke("guarded").json()
    assert answer["ok"], answer["error"]
    assert json.loads(base64.b64decode(answer["body_b64"])) == {
        "kv": 1, "storage": "kept", "modules": ["2.20", 42], "json": "[1]", "day": "2026-12-03"}
    refused = api_agent.invoke("guarded", query={"peek": "1"}).json()
    assert not refused["ok"]
    assert refused["error"]["type"] == "PermissionError"
    assert refused["error"]["message"] == f"hyac: opening /etc/passwd is not allowed {NOTE}"
