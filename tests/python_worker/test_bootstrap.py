"""The Python worker (runtimes/python/bootstrap.py, the entry of _hyac_worker.py), driven as
the agent drives it.

Each test starts the bootstrap as a real subprocess with one end of a socketpair on
fd 3, plays the agent's side of docs/protocol.md and checks what comes back. Every test
runs on each Python 3.9-3.13 found under /root/.pyenv/versions.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtimes" / "python"
BOOTSTRAP = RUNTIME_DIR / "bootstrap.py"
PYENV_VERSIONS = Path("/root/.pyenv/versions")
SUPPORTED = ["3.9", "3.10", "3.11", "3.12", "3.13"]
FUNCTION = {
    "tenant": "acme",
    "name": "hello",
    "version": 3,
    "sha256": "ab" * 32,
    "runtime": "python3.11",
}
TIMEOUT = 20.0


def _interpreter(version: str) -> str | None:
    def patch(path: Path) -> int:
        return int(path.parents[1].name.split(".")[2].split("-")[0] or 0)

    found = sorted(PYENV_VERSIONS.glob(f"{version}.*/bin/python{version}"), key=patch)
    return str(found[-1]) if found else None


def _interpreters() -> Iterator[Any]:
    for version in SUPPORTED:
        path = _interpreter(version)
        reason = f"Python {version} is not installed under {PYENV_VERSIONS}"
        marks = () if path else (pytest.mark.skip(reason=reason),)
        yield pytest.param(path, id=f"py{version}", marks=marks)


@pytest.fixture(params=list(_interpreters()))
def python(request: pytest.FixtureRequest) -> str:
    return request.param


class Worker:
    """A bootstrap subprocess and the agent's end of its channel."""

    def __init__(
        self,
        python: str,
        code_dir: Path,
        env: dict[str, str],
        *,
        fd3: bool = False,
        channel_path: Path | None = None,
        interpreter_args: tuple[str, ...] = ("-I", "-B"),
    ) -> None:
        listener = None
        if channel_path is not None:
            # As the docker backend does: listen on a path, the worker connects once.
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(channel_path))
            listener.listen(1)
            listener.settimeout(TIMEOUT)
        parent, child = socket.socketpair()
        child_fd = child.fileno()
        process_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "HYAC_CODE_DIR": str(code_dir),
            **env,
        }
        if listener is not None:
            process_env["HYAC_CHANNEL_PATH"] = str(channel_path)
            fd_options: dict[str, Any] = {}
        elif fd3:
            # No HYAC_CHANNEL_FD: the worker must find the channel on fd 3, so dup it
            # there in the child. Our fds are non-inheritable, so close_fds=False leaks none.
            fd_options = {
                "close_fds": False,
                "preexec_fn": lambda: os.dup2(child_fd, 3),
            }
        else:
            # As the agent does: the fd keeps its number, named in HYAC_CHANNEL_FD.
            process_env["HYAC_CHANNEL_FD"] = str(child_fd)
            fd_options = {"pass_fds": (child_fd,)}
        self.proc = subprocess.Popen(
            [python, *interpreter_args, str(BOOTSTRAP)],
            env=process_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **fd_options,
        )
        child.close()
        if listener is not None:
            parent.close()
            with listener:
                parent, _ = listener.accept()
            channel_path.unlink()  # type: ignore[union-attr]
        self.code_dir = code_dir
        self.sock = parent
        self.sock.settimeout(TIMEOUT)
        self.logs: list[dict[str, Any]] = []
        self.hostcalls: list[dict[str, Any]] = []
        self.order: list[tuple[str, Any]] = []
        self.kv: dict[str, Any] = {}

    # framing

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        self.sock.sendall(struct.pack(">I", len(data)) + data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, size: int) -> bytes:
        buf = b""
        while len(buf) < size:
            chunk = self.sock.recv(size - len(buf))
            if not chunk:
                raise EOFError("worker closed the channel")
            buf += chunk
        return buf

    def recv(self) -> dict[str, Any]:
        (length,) = struct.unpack(">I", self._read(4))
        message = json.loads(self._read(length))
        self.order.append((message["type"], message.get("id")))
        return message

    # the agent's side

    def init(self, entry: str, env: dict[str, str] | None = None, handler: str = "main") -> None:
        self.send(
            {
                "type": "init",
                "function": FUNCTION,
                "code_dir": str(self.code_dir),
                "entry": entry,
                "handler": handler,
                "env": env or {},
                "timeout": 30.0,
            }
        )

    def startup(self) -> dict[str, Any]:
        """Frames until ready/init_error (logs are collected)."""
        while True:
            message = self.recv()
            if message["type"] == "log":
                self.logs.append(message)
            else:
                return message

    def invoke(
        self,
        body: Any = None,
        *,
        method: str = "POST",
        path: str = "/",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
        raw_body: bytes | None = None,
    ) -> str:
        request_id = "req_" + uuid.uuid4().hex[:12]
        payload = raw_body if raw_body is not None else json.dumps(body).encode()
        self.send(
            {
                "type": "invoke",
                "id": request_id,
                "request": {
                    "method": method,
                    "path": path,
                    "query": query or {},
                    "headers": headers or {"Content-Type": "application/json"},
                    "body_b64": base64.b64encode(payload).decode(),
                    "client_ip": "10.0.0.7",
                },
                "deadline": deadline if deadline is not None else time.time() + 30,
            }
        )
        return request_id

    def results(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Serve logs and host calls until every id in ``ids`` has its result."""
        results: dict[str, dict[str, Any]] = {}
        while len(results) < len(ids):
            message = self.recv()
            if message["type"] == "log":
                self.logs.append(message)
            elif message["type"] == "hostcall":
                self.hostcalls.append(message)
                self.send(self._answer(message))
            elif message["type"] == "result":
                assert message["id"] in ids, message
                assert message["id"] not in results, "two results for one request"
                results[message["id"]] = message
            else:
                raise AssertionError(f"unexpected frame {message}")
        return results

    def call(self, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        request_id = self.invoke(body, **kwargs)
        return self.results([request_id])[request_id]

    def _answer(self, message: dict[str, Any]) -> dict[str, Any]:
        op, args, call = message["op"], message["args"], message["call"]
        if args.get("key", "").startswith("forbidden") or args.get("prefix") == "forbidden":
            error = {"code": "forbidden", "message": "not your key"}
            return {"type": "hostcall_result", "call": call, "ok": False, "error": error}
        if op == "kv.get":
            value = self.kv.get(args["key"])
        elif op == "kv.set":
            self.kv[args["key"]] = args["value"]
            value = None
        elif op == "kv.delete":
            value = self.kv.pop(args["key"], None) is not None
        elif op == "kv.list":
            value = sorted(k for k in self.kv if k.startswith(args["prefix"]))[: args["limit"]]
        else:
            error = {"code": "unknown_op", "message": op}
            return {"type": "hostcall_result", "call": call, "ok": False, "error": error}
        return {"type": "hostcall_result", "call": call, "ok": True, "value": value}

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


@pytest.fixture
def start(python: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """start(files, entry, ...) writes the code, spawns a worker and sends init."""
    workers: list[Worker] = []

    def _start(
        files: dict[str, str],
        entry: str = "functions/hello.py",
        *,
        env: dict[str, str] | None = None,
        process_env: dict[str, str] | None = None,
        handler: str = "main",
        expect_ready: bool = True,
        fd3: bool = False,
        channel_path: Path | None = None,
        interpreter_args: tuple[str, ...] = ("-I", "-B"),
    ) -> Worker:
        code_dir = tmp_path / "code"
        for name, source in files.items():
            target = code_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(source))
        worker = Worker(python, code_dir, process_env or {}, fd3=fd3, channel_path=channel_path,
                        interpreter_args=interpreter_args)
        workers.append(worker)
        worker.init(entry, env=env, handler=handler)
        if expect_ready:
            ready = worker.startup()
            assert ready["type"] == "ready", ready
            worker.ready = ready  # type: ignore[attr-defined]
        return worker

    yield _start
    for worker in workers:
        worker.close()


def body_of(result: dict[str, Any]) -> bytes:
    assert result["ok"], result.get("error")
    return base64.b64decode(result["response"]["body_b64"])


def json_of(result: dict[str, Any]) -> Any:
    assert result["response"]["headers"]["content-type"] == "application/json"
    return json.loads(body_of(result))


def line_of(source: str, marker: str) -> int:
    lines = textwrap.dedent(source).splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


ECHO = """
    import os

    def main(context: FunctionContext):
        return {
            "got": context.request.json(),
            "method": context.request.method,
            "path": context.request.path,
            "query": context.request.query,
            "content_type": context.request.headers.get("content-type"),
            "client_ip": context.request.client_ip,
            "request_id": context.request.id,
            "function": [context.function.tenant, context.function.name,
                         context.function.version, context.function.request_id],
            "env": dict(context.env),
            "os_env": os.environ.get("REGION"),
        }
"""


# start-up


@pytest.mark.parametrize("fd3", [False, True], ids=["HYAC_CHANNEL_FD", "default-fd3"])
def test_ready_frame_reports_pid_and_version(
    start: Callable[..., Worker], python: str, fd3: bool
) -> None:
    worker = start({"functions/hello.py": "def main(context):\n    return 'hi'\n"}, fd3=fd3)
    assert worker.ready["pid"] == worker.proc.pid
    version = re.search(r"python(3\.\d+)$", python).group(1)
    assert worker.ready["runtime_version"].startswith(version + ".")
    assert body_of(worker.call()) == b"hi"


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_echo_request(start: Callable[..., Worker], flavour: str) -> None:
    source = ECHO if flavour == "sync" else ECHO.replace("def main", "async def main")
    worker = start({"functions/hello.py": source}, env={"REGION": "eu"})
    result = worker.call({"n": [1, 2]}, method="put", path="/x", query={"k": "v"})
    data = json_of(result)
    assert data == {
        "got": {"n": [1, 2]},
        "method": "PUT",
        "path": "/x",
        "query": {"k": "v"},
        "content_type": "application/json",
        "client_ip": "10.0.0.7",
        "request_id": result["id"],
        "function": ["acme", "hello", 3, result["id"]],
        "env": {"REGION": "eu"},
        "os_env": "eu",
    }
    assert result["response"]["status"] == 200


def test_injected_names_and_explicit_import(start: Callable[..., Worker]) -> None:
    source = """
        from hyac_context import FunctionContext as Imported, HostCallError

        def main(context: FunctionContext) -> Response:
            assert Imported is FunctionContext and context.Response is Response
            assert issubclass(HostCallError, Exception)
            return context.Response(201, {"x-kind": type(context).__name__}, "made")
    """
    worker = start({"functions/hello.py": source})
    result = worker.call()
    assert result["response"]["status"] == 201
    assert result["response"]["headers"]["x-kind"] == "FunctionContext"
    assert body_of(result) == b"made"


def test_channel_fd_is_not_inherited_by_programs_the_function_runs(
    start: Callable[..., Worker],
) -> None:
    source = """
        import os
        def main(context):
            return {"inheritable": os.get_inheritable(int(os.environ["HYAC_CHANNEL_FD"]))}
    """
    worker = start({"functions/hello.py": source})
    assert json_of(worker.call()) == {"inheritable": False}


# concurrency


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_invocations_run_concurrently(start: Callable[..., Worker], flavour: str) -> None:
    if flavour == "async":
        source = """
            import asyncio, json, time
            async def main(context):
                started = time.monotonic()
                await asyncio.sleep(0.5)
                return json.dumps([started, time.monotonic()])
        """
    else:
        source = """
            import json, time
            def main(context):
                started = time.monotonic()
                time.sleep(0.5)
                return json.dumps([started, time.monotonic()])
        """
    worker = start({"functions/hello.py": source})
    ids = [worker.invoke() for _ in range(4)]
    runs = [json.loads(body_of(r)) for r in worker.results(ids).values()]
    assert len(runs) == 4
    # Overlapping on the worker's own clock: the last started before the first ended
    # (no wall-clock bound, so a busy host cannot fail it and a serial worker cannot pass).
    assert max(started for started, _ in runs) < min(ended for _, ended in runs), runs


def test_worker_threads_setting_limits_sync_pool(start: Callable[..., Worker]) -> None:
    source = """
        import json, time
        def main(context):
            started = time.monotonic()
            time.sleep(0.3)
            return json.dumps([started, time.monotonic()])
    """
    worker = start({"functions/hello.py": source}, process_env={"HYAC_WORKER_THREADS": "1"})
    ids = [worker.invoke() for _ in range(3)]
    runs = sorted(json.loads(body_of(r)) for r in worker.results(ids).values())
    assert len(runs) == 3
    # One at a time, on the worker's own clock: each started after the one before ended.
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(runs)), runs


def next_result(worker: Worker) -> dict[str, Any]:
    """The next result frame (log lines before it are kept in ``worker.logs``)."""
    while True:
        message = worker.recv()
        if message["type"] == "result":
            return message
        assert message["type"] == "log", message
        worker.logs.append(message)


def wait_for_line(worker: Worker, text: str) -> None:
    while not any(text in line["message"] for line in worker.logs):
        message = worker.recv()
        assert message["type"] == "log", message
        worker.logs.append(message)


SLOW_OR_QUICK = """
    import json, time
    def main(context):
        started = time.monotonic()
        if context.request.query.get("slow"):
            print("slow started", flush=True)
            time.sleep(float(context.request.query["slow"]))
        return json.dumps([started, time.monotonic()])
"""


def test_a_request_arriving_while_a_handler_runs_is_served_meanwhile(
    start: Callable[..., Worker],
) -> None:
    """A request that comes while another runs is read at once and runs beside it, not
    after it: a worker must never stop reading its channel while a handler runs."""
    worker = start({"functions/hello.py": SLOW_OR_QUICK})
    slow = worker.invoke(query={"slow": "2"})
    wait_for_line(worker, "slow started")
    quick = worker.invoke()
    assert next_result(worker)["id"] == quick  # a worker serving one at a time answers slow first
    assert next_result(worker)["id"] == slow


def test_the_thread_limit_holds_for_requests_arriving_one_by_one(
    start: Callable[..., Worker],
) -> None:
    worker = start({"functions/hello.py": SLOW_OR_QUICK}, process_env={"HYAC_WORKER_THREADS": "1"})
    slow = worker.invoke(query={"slow": "0.3"})
    wait_for_line(worker, "slow started")
    quick = worker.invoke()
    results = worker.results([slow, quick])
    slow_run, quick_run = (json.loads(body_of(results[i])) for i in (slow, quick))
    assert quick_run[0] >= slow_run[1], (slow_run, quick_run)  # after it, on the worker's clock


def test_a_function_never_runs_on_the_main_thread(start: Callable[..., Worker]) -> None:
    """Alone or in a burst: never the main thread (which reads the channel), where a
    function could install signal handlers only some of the time."""
    source = """
        import threading
        def main(context):
            return [threading.current_thread() is threading.main_thread(),
                    threading.current_thread().name]
    """
    worker = start({"functions/hello.py": source})
    alone = [json_of(worker.call()) for _ in range(3)]
    burst = worker.results([worker.invoke() for _ in range(6)])
    runs = alone + [json_of(result) for result in burst.values()]
    assert all(on_main is False for on_main, _name in runs), runs
    assert all(name.startswith("hyac-sync_") for _on_main, name in runs), runs


# return values


RETURNS = """
    def main(context):
        kind = context.request.query["kind"]
        if kind == "dict":
            return {"a": 1, "s": "é"}
        if kind == "list":
            return [1, "two"]
        if kind == "str":
            return "héllo"
        if kind == "bytes":
            return b"\\x00\\x01"
        if kind == "none":
            return None
        if kind == "response":
            return Response(status=201, headers={"X-Id": 7, "Set-Cookie": ["a=1", "b=2"],
                                                 "x-several": ("one", 2)}, body={"ok": True})
        if kind == "response_text":
            return context.Response(404, body="missing")
        if kind == "response_typed":
            return Response(200, {"Content-Type": "text/csv"}, "a,b\\n")
        if kind == "response_empty":
            return Response(status=304)
        if kind == "unserialisable":
            return {"when": object()}
        if kind == "int":
            return 42
        if kind == "set":
            return {1, 2}
"""


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "body"),
    [
        ("dict", 200, "application/json", '{"a": 1, "s": "é"}'.encode()),
        ("list", 200, "application/json", b'[1, "two"]'),
        ("str", 200, "text/plain; charset=utf-8", "héllo".encode()),
        ("bytes", 200, "application/octet-stream", b"\x00\x01"),
        ("none", 204, None, b""),
        ("response", 201, "application/json", b'{"ok": true}'),
        ("response_text", 404, "text/plain; charset=utf-8", b"missing"),
        ("response_typed", 200, "text/csv", b"a,b\n"),
        ("response_empty", 304, None, b""),
        ("int", 200, "application/json", b"42"),
    ],
)
def test_return_values_map_to_responses(
    start: Callable[..., Worker], kind: str, status: int, content_type: str | None, body: bytes
) -> None:
    worker = start({"functions/hello.py": RETURNS})
    result = worker.call(query={"kind": kind})
    response = result["response"]
    assert response["status"] == status
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers.get("content-type") == content_type
    assert body_of(result) == body
    if kind == "response":
        assert headers["x-id"] == "7"
        # a list: Set-Cookie a line each (the agent sends each apart), others joined
        assert headers["set-cookie"] == "a=1\nb=2"
        assert headers["x-several"] == "one, 2"


@pytest.mark.parametrize(
    ("kind", "needle"), [("unserialisable", "not JSON-serialisable"), ("set", "not set")]
)
def test_unsendable_return_value_is_a_type_error(
    start: Callable[..., Worker], kind: str, needle: str
) -> None:
    worker = start({"functions/hello.py": RETURNS})
    result = worker.call(query={"kind": kind})
    assert result["ok"] is False
    assert result["error"]["type"] == "TypeError"
    assert needle in result["error"]["message"]
    assert "bootstrap.py" not in result["error"]["traceback"]


def test_bad_request_json_is_a_clear_value_error(start: Callable[..., Worker]) -> None:
    worker = start(
        {"functions/hello.py": "def main(context):\n    return context.request.json()\n"}
    )
    result = worker.call(raw_body=b"{nope")
    assert result["error"]["type"] == "ValueError"
    assert result["error"]["message"].startswith("request body is not valid JSON")
    empty = worker.call(raw_body=b"")
    assert empty["response"]["status"] == 204  # empty body -> None -> 204


# logs


LOGGING = """
    import asyncio, sys

    async def main(context):
        rid = context.request.id
        print("start", rid)
        await asyncio.sleep(0.2)
        print("partial-", end="")
        sys.stderr.write("err " + rid + "\\n")
        await asyncio.sleep(0.1)
        print(rid)
        context.logger.info("info %s", rid)
        context.logger.warning("multi\\nline %s", rid)
        print("tail", rid, end="")
        return "ok"
"""


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_logs_are_tagged_with_their_request(start: Callable[..., Worker], flavour: str) -> None:
    source = LOGGING
    if flavour == "sync":
        source = source.replace("async def", "def").replace("await asyncio.sleep", "time.sleep")
        source = source.replace("import asyncio", "import time")
    worker = start({"functions/hello.py": source})
    ids = [worker.invoke() for _ in range(3)]
    worker.results(ids)
    for rid in ids:
        mine = [(m["stream"], m.get("level"), m["message"]) for m in worker.logs if m["id"] == rid]
        assert mine == [
            ("stdout", None, f"start {rid}"),
            ("stderr", None, f"err {rid}"),
            ("stdout", None, f"partial-{rid}"),
            ("logger", "INFO", f"info {rid}"),
            ("logger", "WARNING", "multi"),
            ("logger", "WARNING", f"line {rid}"),
            ("stdout", None, f"tail {rid}"),  # unfinished line flushed at the end
        ]
        # every log line of a request is sent before its result
        assert worker.order.index(("log", rid)) < worker.order.index(("result", rid))
        last_log = max(i for i, item in enumerate(worker.order) if item == ("log", rid))
        assert last_log < worker.order.index(("result", rid))


def test_text_without_a_utf8_form_is_answered_not_lost(start: Callable[..., Worker]) -> None:
    """A lone surrogate (what "\\ud800" in JSON, or surrogateescape, makes) has no UTF-8
    form: in an exception's message, a print or a log call it made the frame unsendable,
    the request was never answered, and the thread that ran it was gone."""
    source = """
        import logging

        def main(context):
            bad = "x" + chr(0xD800) + "y"
            if context.request.query.get("raise"):
                raise ValueError(bad)
            print(bad)
            context.logger.warning("logged %s", bad)
            return {"ok": True}
    """
    worker = start({"functions/hello.py": source},
                   process_env={"HYAC_WORKER_THREADS": "1"})
    for _ in range(3):  # the one thread answers each time, so it survived each
        failed = worker.call(query={"raise": "1"})
        assert failed["ok"] is False and failed["error"]["type"] == "ValueError"
        assert failed["error"]["message"] == "x\ud800y"  # escaped in the frame, as JSON allows
    rid = worker.invoke()
    assert json_of(worker.results([rid])[rid]) == {"ok": True}
    mine = [m["message"] for m in worker.logs if m["id"] == rid]
    assert mine == ["x\ud800y", "logged x\ud800y"]


def test_module_level_output_has_no_request_id(start: Callable[..., Worker]) -> None:
    source = """
        print("loading")
        def main(context):
            return None
    """
    worker = start({"functions/hello.py": source})
    assert worker.logs == [{"type": "log", "id": None, "stream": "stdout", "message": "loading"}]


def test_logger_exception_includes_user_traceback(start: Callable[..., Worker]) -> None:
    source = """
        def main(context):
            try:
                {}["k"]  # raises here
            except KeyError:
                context.logger.exception("lookup failed for %s", "k")
            return None
    """
    worker = start({"functions/hello.py": source})
    result = worker.call()
    lines = [m["message"] for m in worker.logs if m["id"] == result["id"]]
    assert lines[0] == "lookup failed for k"
    assert {m["level"] for m in worker.logs if m["id"] == result["id"]} == {"ERROR"}
    assert f'  File "functions/hello.py", line {line_of(source, "raises here")}, in main' in lines
    assert lines[-1] == "KeyError: 'k'"
    assert not any("hyac_context" in line for line in lines)


# errors


FAILING = """
    def divide(a, b):
        return a / b  # divide here

    def main(context):
        return divide(1, 0)  # call here
"""


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_traceback_shows_only_user_frames(start: Callable[..., Worker], flavour: str) -> None:
    source = FAILING if flavour == "sync" else FAILING.replace("def main", "async def main")
    worker = start({"functions/hello.py": source})
    error = worker.call()["error"]
    assert error["type"] == "ZeroDivisionError"
    assert error["message"] == "division by zero"
    tb = error["traceback"]
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\w+)', tb)
    assert frames == [
        ("functions/hello.py", str(line_of(source, "call here")), "main"),
        ("functions/hello.py", str(line_of(source, "divide here")), "divide"),
    ]
    assert tb.startswith("Traceback (most recent call last):\n")
    assert tb.endswith("ZeroDivisionError: division by zero\n")
    for leaked in ("bootstrap", "hyac_context", "_hyac", "asyncio", "concurrent", "threading"):
        assert leaked not in tb


def test_traceback_through_helper_module_and_chained_cause(
    start: Callable[..., Worker],
) -> None:
    helper = """
        class BadInput(Exception):
            pass

        def parse(text):
            try:
                return int(text)  # int here
            except ValueError as exc:
                raise BadInput("not a number: " + text) from exc  # raise here
    """
    main = """
        from util import parse

        def main(context):
            return {"n": parse("x")}  # parse here
    """
    worker = start(
        {"functions/calc/main.py": main, "functions/calc/util.py": helper},
        entry="functions/calc/main.py",
    )
    error = worker.call()["error"]
    assert error["type"] == "BadInput"
    tb = error["traceback"]
    assert f'File "functions/calc/util.py", line {line_of(helper, "int here")}, in parse' in tb
    assert "The above exception was the direct cause of the following exception" in tb
    assert f'File "functions/calc/main.py", line {line_of(main, "parse here")}, in main' in tb
    assert f'File "functions/calc/util.py", line {line_of(helper, "raise here")}, in parse' in tb
    assert tb.endswith("util.BadInput: not a number: x\n")
    assert str(worker.code_dir) not in tb  # paths are relative to the code directory


def test_user_exception_class_in_entry_has_plain_name(start: Callable[..., Worker]) -> None:
    source = """
        class Nope(Exception):
            pass

        def main(context):
            raise Nope("no")
    """
    worker = start({"functions/hello.py": source})
    error = worker.call()["error"]
    assert error["type"] == "Nope"
    assert error["traceback"].endswith("\nNope: no\n")


def test_helper_module_layout_imports_sibling(start: Callable[..., Worker]) -> None:
    files = {
        "functions/calc/main.py": "from util import double\n"
        "def main(context):\n    return {'r': double(context.request.json())}\n",
        "functions/calc/util.py": "def double(x):\n    return 2 * x\n",
    }
    worker = start(files, entry="functions/calc/main.py")
    assert json_of(worker.call(21)) == {"r": 42}


def test_syntax_error_at_init_names_file_and_line(start: Callable[..., Worker]) -> None:
    source = "def main(context):\n    x = 1\n    return (x +\n\nprint('unreachable')\n"
    worker = start({"functions/bad.py": source}, entry="functions/bad.py", expect_ready=False)
    reply = worker.startup()
    assert reply["type"] == "init_error"
    error = reply["error"]
    assert error["type"] == "SyntaxError"
    assert "functions/bad.py" in error["message"]
    match = re.search(r'File "functions/bad\.py", line (\d+)', error["traceback"])
    assert match and int(match.group(1)) in (3, 5), error["traceback"]
    assert f"line {match.group(1)}" in error["message"]
    assert "bootstrap" not in error["traceback"]
    assert worker.wait() == 1


def test_missing_main_is_an_init_error(start: Callable[..., Worker]) -> None:
    worker = start({"functions/hello.py": "def handler(context):\n    pass\n"}, expect_ready=False)
    reply = worker.startup()
    assert reply["type"] == "init_error"
    assert reply["error"]["message"] == "functions/hello.py has no main(context) function"
    assert worker.wait() == 1


def test_module_level_exception_is_an_init_error(start: Callable[..., Worker]) -> None:
    source = "print('before')\nimport json\nCONFIG = json.loads('{bad')\n"
    worker = start({"functions/hello.py": source}, expect_ready=False)
    reply = worker.startup()
    assert reply["type"] == "init_error"
    assert reply["error"]["type"] == "JSONDecodeError"
    tb = reply["error"]["traceback"]
    assert re.findall(r'File "([^"]+)", line (\d+)', tb) == [("functions/hello.py", "3")]
    assert worker.logs[0]["message"] == "before" and worker.logs[0]["id"] is None
    assert worker.wait() == 1


# host calls


KV_SYNC = """
    def main(context):
        kv = context.kv
        kv.set("user:1", {"name": "ada"})
        kv.set("user:2", [1, 2])
        kv.set("other", "x")
        return {
            "get": kv.get("user:1"),
            "missing": kv.get("nope", "fallback"),
            "list": kv.list("user:"),
            "limited": kv.list(limit=1),
            "deleted": kv.delete("user:2"),
            "deleted_again": kv.delete("user:2"),
        }
"""

KV_ASYNC = (
    KV_SYNC.replace("def main", "async def main")
    .replace("kv.set(", "await kv.aset(")
    .replace("kv.get(", "await kv.aget(")
    .replace("kv.list(", "await kv.alist(")
    .replace("kv.delete(", "await kv.adelete(")
)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_kv_host_calls_round_trip(start: Callable[..., Worker], flavour: str) -> None:
    worker = start({"functions/hello.py": KV_SYNC if flavour == "sync" else KV_ASYNC})
    result = worker.call()
    assert json_of(result) == {
        "get": {"name": "ada"},
        "missing": "fallback",
        "list": ["user:1", "user:2"],
        "limited": ["other"],
        "deleted": True,
        "deleted_again": False,
    }
    assert worker.kv == {"user:1": {"name": "ada"}, "other": "x"}
    assert {call["id"] for call in worker.hostcalls} == {result["id"]}
    assert len({call["call"] for call in worker.hostcalls}) == len(worker.hostcalls) == 9
    assert worker.hostcalls[0]["op"] == "kv.set"
    assert worker.hostcalls[0]["args"] == {"key": "user:1", "value": {"name": "ada"}}
    assert worker.hostcalls[5]["args"] == {"prefix": "user:", "limit": 1000}


def test_async_host_calls_do_not_block_other_requests(start: Callable[..., Worker]) -> None:
    source = """
        async def main(context):
            return await context.kv.aget(context.request.query["key"])
    """
    worker = start({"functions/hello.py": source})
    worker.kv = {"a": "A", "b": "B"}
    first = worker.invoke(query={"key": "a"})
    # Hold the first request's host call unanswered while the second completes.
    held = worker.recv()
    assert held["type"] == "hostcall" and held["id"] == first
    second = worker.invoke(query={"key": "b"})
    assert body_of(worker.results([second])[second]) == b"B"
    worker.send(worker._answer(held))
    assert body_of(worker.results([first])[first]) == b"A"


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_host_call_error_raises_host_call_error(start: Callable[..., Worker], flavour: str) -> None:
    source = """
        from hyac_context import HostCallError

        def main(context):
            try:
                context.kv.get("forbidden:caught")
            except HostCallError as exc:
                caught = [exc.code, exc.message]
            context.logger.info("caught %s", caught)
            return context.kv.get("forbidden:x")  # uncaught here
    """
    if flavour == "async":
        source = source.replace("def main", "async def main").replace(
            "context.kv.get(", "await context.kv.aget("
        )
    worker = start({"functions/hello.py": source})
    result = worker.call()
    assert [m["message"] for m in worker.logs] == ["caught ['forbidden', 'not your key']"]
    error = result["error"]
    assert error["type"] == "HostCallError"
    assert error["message"] == "forbidden: not your key"
    line = line_of(source, "uncaught here")
    assert re.findall(r'File "([^"]+)", line (\d+)', error["traceback"]) == [
        ("functions/hello.py", str(line))
    ]


def test_kv_rejects_non_json_values_before_calling_host(start: Callable[..., Worker]) -> None:
    source = """
        def main(context):
            context.kv.set("k", {1, 2})
    """
    worker = start({"functions/hello.py": source})
    error = worker.call()["error"]
    assert error["type"] == "TypeError"
    assert "JSON-serialisable" in error["message"]
    assert worker.hostcalls == []


# deadlines


def test_remaining_time_counts_down(start: Callable[..., Worker]) -> None:
    source = """
        import time
        def main(context):
            first = context.remaining_time()
            time.sleep(0.2)
            return [context.deadline, first, context.remaining_time()]
    """
    worker = start({"functions/hello.py": source})
    deadline = time.time() + 10
    sent_deadline, first, second = json_of(worker.call(deadline=deadline))
    assert sent_deadline == pytest.approx(deadline)
    assert 8 < first <= 10
    assert first - second >= 0.15
    assert json_of(worker.call(deadline=time.time() - 5))[1] == 0.0


# lifecycle


def test_shutdown_finishes_in_flight_work_and_exits_zero(start: Callable[..., Worker]) -> None:
    source = """
        import time
        def main(context):
            time.sleep(0.3)
            return "finished"
    """
    worker = start({"functions/hello.py": source})
    request_id = worker.invoke()
    worker.send({"type": "shutdown"})
    assert body_of(worker.results([request_id])[request_id]) == b"finished"
    assert worker.wait() == 0


def test_channel_eof_exits_promptly(start: Callable[..., Worker]) -> None:
    source = """
        import time
        def main(context):
            print("running", flush=True)
            while True:  # never ends by itself
                time.sleep(1)
    """
    worker = start({"functions/hello.py": source})
    worker.invoke()
    while worker.recv()["type"] != "log":  # until the function is running
        pass
    worker.sock.shutdown(socket.SHUT_RDWR)
    # The function never returns, so only the channel's end can have ended the worker.
    assert worker.wait(timeout=60) == 0


@pytest.mark.parametrize(
    "garbage",
    [
        struct.pack(">I", 5) + b"{nope",
        struct.pack(">I", 2) + b"[]",
        struct.pack(">I", 64 * 1024 * 1024 + 1),
        struct.pack(">I", 17) + b'{"type": "bogus"}',
    ],
    ids=["bad-json", "not-object", "too-large", "unknown-type"],
)
def test_malformed_frame_exits_non_zero(start: Callable[..., Worker], garbage: bytes) -> None:
    worker = start({"functions/hello.py": "def main(context):\n    return 1\n"})
    worker.send_raw(garbage)
    assert worker.wait() != 0
    assert b"protocol error" in worker.proc.stderr.read()


@pytest.mark.parametrize("request_field", [
    "not an object",
    {"body_b64": "%%% not base64"},
    {"query": ["not", "a", "mapping"]},
], ids=["request-not-object", "bad-base64", "bad-query"])
def test_a_malformed_request_fails_alone_and_the_worker_serves_on(
    start: Callable[..., Worker], request_field: Any
) -> None:
    worker = start({"functions/hello.py": "def main(context):\n    return 'fine'\n"})
    worker.send({"type": "invoke", "id": "req_broken", "request": request_field,
                 "deadline": time.time() + 30})
    failed = worker.results(["req_broken"])["req_broken"]
    assert failed["ok"] is False, failed
    assert "malformed request" in failed["error"]["message"] or \
        "must be an object" in failed["error"]["message"], failed
    assert body_of(worker.call()) == b"fine"  # the next request is served as usual
    assert worker.proc.poll() is None


# the channel


def invoke_frame(body: bytes, query: dict[str, str] | None = None) -> tuple[str, bytes]:
    """An encoded invoke frame (and its id), for tests that control how bytes arrive."""
    request_id = "req_" + uuid.uuid4().hex[:12]
    request = {"method": "POST", "path": "/", "query": query or {}, "headers": {},
               "body_b64": base64.b64encode(body).decode(), "client_ip": "10.0.0.7"}
    data = json.dumps({"type": "invoke", "id": request_id, "request": request,
                       "deadline": time.time() + 30}).encode()
    return request_id, struct.pack(">I", len(data)) + data


BODY_ECHO = "def main(context):\n    return context.request.body\n"


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_channel_path_mode_serves_invocations_and_host_calls(
    start: Callable[..., Worker], flavour: str
) -> None:
    # Unix socket paths are short (108 bytes): not under pytest's tmp_path.
    with tempfile.TemporaryDirectory(prefix="hyac-") as short:
        worker = start(
            {"functions/hello.py": KV_SYNC if flavour == "sync" else KV_ASYNC},
            channel_path=Path(short) / "channel.sock",
        )
        assert json_of(worker.call())["get"] == {"name": "ada"}
        assert len(worker.hostcalls) == 9


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_frames_coalesced_or_split_anywhere(start: Callable[..., Worker], flavour: str) -> None:
    source = BODY_ECHO if flavour == "sync" else BODY_ECHO.replace("def main", "async def main")
    worker = start({"functions/hello.py": source})
    for chunked in (False, True):
        bodies = {}
        for n in range(12):
            body = b"x" * (n * 37) + bytes([n])
            request_id, frame = invoke_frame(body)
            bodies[request_id] = (body, frame)
        data = b"".join(frame for _, frame in bodies.values())
        if chunked:  # a few bytes at a time, cutting headers and payloads alike
            for i in range(0, len(data), 7):
                worker.send_raw(data[i : i + 7])
                if i % 350 == 0:
                    time.sleep(0.001)
        else:  # every frame in one write
            worker.send_raw(data)
        results = worker.results(list(bodies))
        for request_id, (body, _) in bodies.items():
            assert body_of(results[request_id]) == body
    assert len([kind for kind, _ in worker.order if kind == "result"]) == 24


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_large_request_and_response_bodies(start: Callable[..., Worker], flavour: str) -> None:
    source = BODY_ECHO if flavour == "sync" else BODY_ECHO.replace("def main", "async def main")
    worker = start({"functions/hello.py": source})
    body = os.urandom(3 * 1024 * 1024)
    small_id, small = invoke_frame(b"small")
    big_id, big = invoke_frame(body)
    worker.send_raw(big + small)
    results = worker.results([big_id, small_id])
    assert body_of(results[big_id]) == body
    assert body_of(results[small_id]) == b"small"


def test_channel_closed_mid_frame_is_a_protocol_error(start: Callable[..., Worker]) -> None:
    worker = start({"functions/hello.py": "def main(context):\n    return 1\n"})
    worker.send_raw(struct.pack(">I", 100) + b'{"type": ')
    worker.sock.shutdown(socket.SHUT_WR)
    assert worker.wait() == 2
    assert b"protocol error" in worker.proc.stderr.read()


def test_sync_host_calls_answered_out_of_order(start: Callable[..., Worker]) -> None:
    source = """
        def main(context):
            return {"value": context.kv.get(context.request.query["key"])}
    """
    worker = start({"functions/hello.py": source})
    worker.kv = {f"k{n}": n for n in range(6)}
    ids = [worker.invoke(query={"key": f"k{n}"}) for n in range(6)]
    held = [worker.recv() for _ in range(6)]  # every pool thread now blocks on its call
    assert sorted(m["type"] for m in held) == ["hostcall"] * 6
    for message in reversed(held):
        worker.send(worker._answer(message))
    results = worker.results(ids)
    assert [json_of(results[i])["value"] for i in ids] == list(range(6))


def test_sync_function_returning_a_coroutine_is_awaited(start: Callable[..., Worker]) -> None:
    source = """
        import asyncio

        async def later(context):
            await asyncio.sleep(0.01)
            print("from the coroutine")
            return {"id": context.request.id}

        def main(context):
            return later(context)
    """
    worker = start({"functions/hello.py": source})
    result = worker.call()
    assert json_of(result) == {"id": result["id"]}
    assert [(m["id"], m["message"]) for m in worker.logs] == [(result["id"], "from the coroutine")]


def test_coroutines_returned_by_a_sync_function_share_one_event_loop(
    start: Callable[..., Worker],
) -> None:
    # The worker of a ``def`` function has no event loop of its own: the first coroutine
    # one returns starts one, and every later coroutine runs on that same loop (state a
    # function keeps between invocations, such as a client session, is bound to it).
    source = """
        import asyncio

        async def later(context):
            value = await context.kv.aget("k")
            return {"loop": id(asyncio.get_running_loop()), "value": value}

        def main(context):
            return later(context)
    """
    worker = start({"functions/hello.py": source})
    loops = []
    for _ in range(3):
        request_id = worker.invoke()
        message = worker.recv()
        assert message["type"] == "hostcall" and message["op"] == "kv.get"
        worker.send({"type": "hostcall_result", "call": message["call"], "ok": True, "value": 7})
        body = json_of(worker.results([request_id])[request_id])
        assert body["value"] == 7
        loops.append(body["loop"])
    assert len(set(loops)) == 1


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_only_an_async_function_pays_for_asyncio(
    start: Callable[..., Worker], python: str, flavour: str
) -> None:
    # asyncio, inspect and typing are most of a cold start's interpreter time: a ``def``
    # function's worker starts and serves without importing them (beyond what the
    # interpreter's own start-up imports, a site-packages .pth file for one).
    heavy = ("asyncio", "inspect", "typing")
    check = f"import sys; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    bare = subprocess.run([python, "-I", "-c", check], capture_output=True, text=True, check=True)
    source = f"""
        import sys

        def main(context):
            return sorted(m for m in {heavy!r} if m in sys.modules)
    """
    if flavour == "async":
        source = source.replace("def main", "async def main")
    worker = start({"functions/hello.py": source})
    loaded = json_of(worker.call())
    if flavour == "sync":
        assert loaded == json.loads(bare.stdout.replace("'", '"'))
    else:
        assert "asyncio" in loaded


def test_an_error_with_no_memory_left_to_format_it_is_still_answered(
    start: Callable[..., Worker],
) -> None:
    # A function out of memory may leave none to format its traceback with: the answer
    # is still its MemoryError, recognised as out of memory, without the frames.
    source = """
        import traceback

        class NoRoom:
            def __init__(self, *args, **kwargs):
                raise MemoryError("nothing left to format with")

        def main(context):
            traceback.TracebackException = NoRoom
            raise MemoryError("the hoard took it all")
    """
    worker = start({"functions/hello.py": source})
    failed = worker.call()
    assert failed["ok"] is False
    assert failed["error"]["type"] == "MemoryError"
    assert failed["error"]["code"] == "out_of_memory"
    assert failed["error"]["message"] == "the hoard took it all"
    assert failed["error"]["traceback"] == ""


def test_what_a_worker_needs_only_later_is_imported_later(
    start: Callable[..., Worker], python: str
) -> None:
    # concurrent.futures with logging (for a host call) are a sixth of a worker's imports:
    # a worker that has not called the host has not loaded them; the first host call
    # does, and works, and so does the first failure after it. (traceback is imported at
    # start: a function out of memory leaves no memory to import it with.)
    later = ("concurrent.futures", "logging")
    check = f"import sys; print(sorted(m for m in {later!r} if m in sys.modules))"
    bare = subprocess.run([python, "-I", "-c", check], capture_output=True, text=True, check=True)
    source = f"""
        import sys

        def main(context):
            if context.request.body == b"call":
                return context.kv.get("k")
            if context.request.body == b"fail":
                raise KeyError("boom")
            return sorted(m for m in {later!r} if m in sys.modules)
    """
    worker = start({"functions/hello.py": source})
    assert json_of(worker.call()) == json.loads(bare.stdout.replace("'", '"'))
    worker.kv["k"] = 7
    assert json_of(worker.call(raw_body=b"call")) == 7
    assert [call["op"] for call in worker.hostcalls] == ["kv.get"]
    failed = worker.call(raw_body=b"fail")
    assert failed["ok"] is False and failed["error"]["type"] == "KeyError"
    assert 'raise KeyError("boom")' in failed["error"]["traceback"]
    assert "functions/hello.py" in failed["error"]["traceback"]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_context_variables_do_not_leak_between_invocations(
    start: Callable[..., Worker], flavour: str
) -> None:
    source = """
        import contextvars
        seen = contextvars.ContextVar("seen", default=0)

        def main(context):
            value = seen.get()
            seen.set(value + 1)
            return value
    """
    if flavour == "async":
        source = source.replace("def main", "async def main")
    worker = start({"functions/hello.py": source}, process_env={"HYAC_WORKER_THREADS": "1"})
    assert [json_of(worker.call()) for _ in range(3)] == [0, 0, 0]


def test_shutdown_finishes_in_flight_async_work(start: Callable[..., Worker]) -> None:
    source = """
        import asyncio
        async def main(context):
            await asyncio.sleep(0.3)
            return "finished"
    """
    worker = start({"functions/hello.py": source})
    ids = [worker.invoke() for _ in range(3)]
    worker.send({"type": "shutdown"})
    assert all(body_of(r) == b"finished" for r in worker.results(ids).values())
    assert worker.wait() == 0


def test_blocking_host_call_from_async_function_still_gets_its_reply(
    start: Callable[..., Worker],
) -> None:
    # Blocking the loop is the function's mistake (kv.get instead of await kv.aget), but
    # the loop reads the channel: the wait must read the reply itself, and keep frames
    # that arrive meanwhile for later.
    source = """
        async def main(context):
            return {"value": context.kv.get(context.request.query["key"])}
    """
    worker = start({"functions/hello.py": source})
    worker.kv = {"a": "A", "b": "B"}
    first = worker.invoke(query={"key": "a"})
    held = worker.recv()
    assert held["type"] == "hostcall" and held["id"] == first
    second = worker.invoke(query={"key": "b"})  # arrives while the loop is blocked
    worker.send(worker._answer(held))
    results = worker.results([first, second])
    assert json_of(results[first]) == {"value": "A"}
    assert json_of(results[second]) == {"value": "B"}


POOL_WITHOUT_THREADS = """
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import _hyac_worker

ran, refused = [], []
started, release = threading.Event(), threading.Event()

def run(job):
    ran.append(job)
    if job == "first":
        started.set()
        release.wait(10)

def failing_start(self):
    raise RuntimeError("can't start new thread")

real_start = threading.Thread.start
pool = _hyac_worker.SyncPool(4, run, lambda job, exc: refused.append([job, str(exc)]))
threading.Thread.start = failing_start
pool.submit("orphan")  # not one thread can be started: refused at once
threading.Thread.start = real_start
pool.submit("first")
started.wait(10)
threading.Thread.start = failing_start
pool.submit("queued")  # a thread runs: it takes the job once it is free
threading.Thread.start = real_start
release.set()
deadline = time.monotonic() + 10
while "queued" not in ran and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps({"ran": ran, "refused": refused, "threads": pool._threads}))
"""


def test_a_pool_thread_that_cannot_start_loses_no_request(tmp_path: Path) -> None:
    """Where the sandbox's limits leave no room for one more thread, the job waits for a
    running thread; with none running it is answered at once (as out of memory), never
    left queued until its timeout."""
    script = tmp_path / "pool.py"
    script.write_text(POOL_WITHOUT_THREADS)
    out = subprocess.run([sys.executable, str(script), str(RUNTIME_DIR)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ran"] == ["first", "queued"], result
    assert result["refused"] == [["orphan", "can't start new thread"]], result
    assert result["threads"] == 1, result  # the failed starts are not counted as threads
