"""`hyac lsp` as a subprocess, spoken to over stdio as an editor would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from queue import Queue
from typing import Any

import pytest

from hyac_cli.stubs import MODULE_NAME

from .test_complete import runtime_members

SOURCE = '''\
def main(context):
    context.remaining_time()
    value = context.kv.get("a")
    return {"v": value, "x": context.nonexistent}
'''


class LspClient:
    """A minimal LSP client: Content-Length framed JSON-RPC over the server's pipes."""

    def __init__(self, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hyac_cli", "lsp"], cwd=cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
        )
        self.messages: Queue[dict[str, Any]] = Queue()
        self.notifications: list[dict[str, Any]] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            headers: dict[str, str] = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            self.messages.put(json.loads(body))

    def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps({"jsonrpc": "2.0", **payload}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        self.process.stdin.flush()

    def request(self, method: str, params: Any, timeout: float = 30) -> Any:
        self._next_id += 1
        self.send({"id": self._next_id, "method": method, "params": params})
        while True:
            message = self.messages.get(timeout=timeout)
            if message.get("id") == self._next_id and "method" not in message:
                assert "error" not in message, message
                return message.get("result")
            self.notifications.append(message)

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        for message in self.notifications:
            if message.get("method") == method:
                self.notifications.remove(message)
                return message
        while True:
            message = self.messages.get(timeout=timeout)
            if message.get("method") == method:
                return message
            self.notifications.append(message)

    def close(self) -> int:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def session(tmp_path: Path) -> Any:
    project = tmp_path / "proj"
    init = subprocess.run([sys.executable, "-m", "hyac_cli", "init", str(project)],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    path = project / "functions" / "edit.py"
    path.write_text(SOURCE)
    client = LspClient(project)
    result = client.request("initialize", {
        "processId": os.getpid(), "rootUri": project.as_uri(), "capabilities": {},
    })
    assert result["capabilities"]["completionProvider"]
    assert result["capabilities"]["hoverProvider"]
    client.notify("initialized", {})
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": SOURCE,
    }})
    yield client, uri, project
    assert client.close() == 0


def test_a_session_over_stdio(session: Any) -> None:
    client, uri, project = session
    diagnostics = client.wait_for("textDocument/publishDiagnostics")["params"]
    assert diagnostics["uri"] == uri
    messages = [d["message"] for d in diagnostics["diagnostics"]]
    assert messages == ["FunctionContext has no member 'nonexistent'"]
    where = diagnostics["diagnostics"][0]["range"]
    column = SOURCE.splitlines()[3].index("nonexistent")
    assert where == {"start": {"line": 3, "character": column},
                     "end": {"line": 3, "character": column + len("nonexistent")}}

    doc = {"textDocument": {"uri": uri}}
    items = client.request("textDocument/completion", {**doc, "position": {"line": 1, "character": 12}})
    labels = [item["label"] for item in items["items"]]
    assert set(labels) == runtime_members("FunctionContext")

    hover = client.request("textDocument/hover", {**doc, "position": {"line": 2, "character": 24}})
    text = hover["contents"]["value"]
    assert "get(key: str" in text and "Return the value stored under" in text

    signature = client.request("textDocument/signatureHelp",
                               {**doc, "position": {"line": 2, "character": 27}})
    assert signature["signatures"][0]["label"].startswith("get(key: str")
    assert signature["activeParameter"] == 0

    found = client.request("textDocument/definition", {**doc, "position": {"line": 2, "character": 24}})
    assert len(found) == 1
    assert found[0]["uri"] == (project / "typings" / f"{MODULE_NAME}.pyi").as_uri()


def test_diagnostics_follow_edits(session: Any) -> None:
    client, uri, _ = session
    client.wait_for("textDocument/publishDiagnostics")
    for version, (text, expected) in enumerate([
        ("def main(context):\n    return (1,\n", "SyntaxError"),
        ("def handler(context):\n    return 1\n", "no top-level main(context)"),
        ("def main():\n    return 1\n", "main must take exactly one argument"),
    ], start=2):
        client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"text": text}],
        })
        published = client.wait_for("textDocument/publishDiagnostics")["params"]
        assert [d["message"] for d in published["diagnostics"]][0].startswith(expected) or any(
            expected in d["message"] for d in published["diagnostics"]), published
