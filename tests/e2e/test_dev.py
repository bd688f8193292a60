"""`hyac dev` as a user runs it: a real agent, a real watcher, edits on disk, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue

import pytest

from .test_cli_tour import HYAC, hyac, local_agent, project  # noqa: F401 - fixtures


class Running:
    """A `hyac dev` process whose merged output is read line by line in the background."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [*HYAC, "dev", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        )
        self.lines: Queue[str] = Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, needle: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except Empty:
                break
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not seen in:\n" + "\n".join(self.seen))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()


@pytest.fixture
def dev(project: Path) -> Iterator[Running]:  # noqa: F811 - the fixture above
    manifest = project / "hyac.toml"
    manifest.write_text(manifest.read_text() + '\n[functions.hello]\nsample = { name = "Sam" }\n')
    running = Running(project)
    yield running
    running.stop()


def test_dev_redeploys_on_save_and_stops_on_ctrl_c(
    dev: Running, project: Path  # noqa: F811 - the fixture
) -> None:
    dev.expect("hello  v1  deployed")
    dev.expect('replay hello → 200 {"hello": "Sam"}')
    first = hyac("invoke", "hello", "--data", '{"name": "Ada"}', cwd=project)
    assert json.loads(first.stdout) == {"hello": "Ada"}
    dev.expect("greeting Ada")  # the project's logs, live

    hello = project / "functions" / "hello.py"
    original = hello.read_text()
    hello.write_text(original.replace('{"hello": name}', '{"hi": name}'))
    dev.expect("hello  v2  deployed")
    dev.expect('replay hello → 200 {"hi": "Sam"}')
    second = hyac("invoke", "hello", "--data", '{"name": "Ada"}', cwd=project)
    assert json.loads(second.stdout) == {"hi": "Ada"}

    hello.write_text(original.replace("return {", "return ({"))  # a syntax error
    error = dev.expect("Error: functions/hello.py:")
    assert "SyntaxError" in error
    assert dev.process.poll() is None  # still watching; v2 still serving
    still = hyac("invoke", "hello", "--data", '{"name": "Bo"}', cwd=project)
    assert json.loads(still.stdout) == {"hi": "Bo"}

    (project / "functions" / "extra.py").write_text("def main(context):\n    return 'new'\n")
    dev.expect("extra  v1  deployed")
    assert hyac("invoke", "extra", cwd=project).stdout == "new\n"

    assert dev.stop() == 0
    output = "\n".join(dev.seen) + "\n" + "\n".join(iter(lambda: _drain(dev), None))
    assert "Traceback" not in output


def _drain(dev: Running) -> str | None:
    try:
        return dev.lines.get(timeout=0.5)
    except Empty:
        return None
