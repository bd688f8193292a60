"""One bwrap agent for all the template tests (each uses its own tenants and names), with
mail through a real SMTP server process (the mail tests' own), and helpers to drive it as
the CLI does."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from tests.integration.test_mail import SmtpServer

from tests.conftest import RunningAgent, start_agent
from tests.tenancy.conftest import Platform, agent_env

HYAC = [sys.executable, "-m", "hyac_cli"]


@pytest.fixture(scope="package")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    pytest.importorskip("aiosmtpd", reason="aiosmtpd is not installed (pip install -e '.[test]')")
    from tests.integration.test_mail import start_smtp

    server = start_smtp(tmp_path_factory.mktemp("smtp"))
    yield server
    server.stop()


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer) -> Iterator[Platform]:
    smtp_url = f"smtp://127.0.0.1:{smtp.port}?starttls=no"
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    home = tmp_path_factory.mktemp("templates")
    running = start_agent(home / "data", "--sandbox", "bwrap",
                          env={**agent_env(), "HYAC_SMTP_URL": smtp_url,
                               "HYAC_MAIL_FROM": "Hyac <noreply@example.com>",
                               "HYAC_TEMPLATE_MODERATORS": "mona, max",
                               # the notifier templates' channels post to a loopback receiver
                               "HYAC_CALLBACK_ALLOW_CIDRS": "127.0.0.0/8"})
    yield Platform(running)
    running.kill(signal.SIGTERM)


def as_cli(monkeypatch: pytest.MonkeyPatch, agent: RunningAgent, token: str | None = None) -> None:
    """Point the CLI's code, called in this process, at ``agent``."""
    monkeypatch.setenv("HYAC_URL", agent.url)
    monkeypatch.setenv("HYAC_TOKEN", token or agent.token)


def hyac(*args: str, agent: RunningAgent, token: str | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HYAC_URL": agent.url,
           "HYAC_TOKEN": token or agent.token}
    return subprocess.run([*HYAC, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=env)


def files_b64(files: dict[str, str | bytes]) -> dict[str, str]:
    return {path: base64.b64encode(content if isinstance(content, bytes) else content.encode()).decode()
            for path, content in files.items()}


def invoke_sample(client: httpx.Client, sample: dict[str, Any]) -> httpx.Response:
    """Invoke the function a template's sample request names, with that request."""
    headers = dict(sample.get("headers") or {})
    if "text" in sample:
        raw = str(sample["text"]).encode()
    elif "body" in sample:
        raw = json.dumps(sample["body"]).encode()
        headers.setdefault("content-type", "application/json")
    else:
        raw = b""
    return client.post(f"/v1/functions/{sample['function']}/invoke", json={
        "method": sample.get("method", "POST"), "query": sample.get("query") or {},
        "headers": headers, "body_b64": base64.b64encode(raw).decode()})
