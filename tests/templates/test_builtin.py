"""Every built-in template, as a user gets it: installed from the agent's registry into a
project (`hyac init --template`'s code), deployed, and invoked with its own sample
request, whose expectations it must meet."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyac_agent.templates.builtin import builtin_dirs
from hyac_agent.templates.manifest import parse_manifest
from tests.deps.test_dependencies import _pypi_unreachable
from tests.integration.test_mail import SmtpServer
from tests.runtime_families.conftest import runtime_missing
from tests.tasks.test_callbacks import Receiver
from tests.templates.conftest import as_cli, invoke_sample
from tests.tenancy.conftest import Platform
from tests.waiting import eventually

BUILTINS = {folder.name: folder for folder in builtin_dirs()}


def _case(name: str) -> object:
    # Pillow, Markdown, jsonschema: installed from PyPI (its cache in CI) on deploy
    needs_pypi = b"requirements" in (BUILTINS[name] / "hyac.toml").read_bytes()
    return pytest.param(name, marks=[pytest.mark.network] if needs_pypi else [])


def test_at_least_twelve_builtins_with_distinct_functions() -> None:
    assert len(BUILTINS) >= 12
    runtimes = {parse_manifest((folder / "template.toml").read_bytes()).runtime
                for folder in BUILTINS.values()}
    assert {"python", "node20", "deno"} <= runtimes


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    served = Receiver()
    yield served
    served.close()


def _check_mail(smtp: SmtpServer, wanted: dict[str, str]) -> None:
    """The SMTP server took a message to ``wanted["to"]`` with what the sample expects."""
    received = [message for envelope, message in smtp.received() if wanted["to"] in envelope["rcpt_tos"]]
    assert received, [envelope for envelope, _ in smtp.received()]
    message = received[-1]
    text = "".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")
    assert wanted["contains"] in text, text
    if "attachment" in wanted:
        attached = [part.get_content_type() for part in message.iter_attachments()]
        assert wanted["attachment"] in attached, attached
    if "reply_to" in wanted:
        assert message["Reply-To"] == wanted["reply_to"]


def _check_schedules(client: Any, project: Any) -> None:
    """A schedule hyac.toml declares is the function's schedule once deployed."""
    declared = {spec.name: spec.config["schedule"] for spec in project.select(None)
                if spec.config.get("schedule")}
    if not declared:
        return
    listed = client.get("/v1/schedules")
    assert listed.status_code == 200, listed.text
    found = {s["function"]: s["cron"] for s in listed.json()}
    assert found == declared, (found, declared)


def _check_bomb_refused(client: Any) -> None:
    """A 64-byte PNG whose header claims 8000x6000 pixels (48 MP: over the template's 40,
    under the 80 at which Pillow itself refuses) is refused before it is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 6000, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b""))
    answer = client.post("/v1/functions/thumbnail/invoke", json={
        "method": "POST", "headers": {"content-type": "image/png"},
        "body_b64": base64.b64encode(png).decode()})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == 413, base64.b64decode(result["body_b64"])
    assert b"more than 40 megapixels" in base64.b64decode(result["body_b64"])


def _check_no_script(client: Any) -> None:
    """Markdown that would run script in the rendered page, in the ways Markdown allows."""
    hostile = ("# Hi {onclick=\"alert(1)\" style=\"position:fixed\"}\n\n"
               "[a](javascript:alert(2)) [b](JaVaScRiPt:alert(3)) ![c](data:text/html,x)\n\n"
               "<script>alert(4)</script> <img src=x onerror=alert(5)>\n\n"
               "[fine](https://example.com/) | x |\n")
    answer = client.post("/v1/functions/render/invoke", json={
        "method": "POST", "headers": {"content-type": "application/json"},
        "body_b64": base64.b64encode(json.dumps({"markdown": hostile}).encode()).decode()})
    assert answer.status_code == 200, answer.text
    html = json.loads(base64.b64decode(answer.json()["body_b64"]))["html"]
    for bad in ("onclick", "javascript:", "JaVaScRiPt:", "data:", "<script", "<img src=x",
                "position:fixed"):
        assert bad not in html, (bad, html)
    assert '<a href="https://example.com/">fine</a>' in html and "<h1>Hi</h1>" in html


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _subset(value, actual[key]) for key, value in expected.items())
    return bool(expected == actual)


@pytest.mark.parametrize("name", [_case(name) for name in sorted(BUILTINS)])
def test_builtin_template_deploys_and_answers_its_sample(
    name: str, platform: Platform, smtp: SmtpServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver,
) -> None:
    from hyac_cli.commands.deploy import deploy_functions
    from hyac_cli.commands.template import fetch_template
    from hyac_cli.manifest import load_project

    runtime = parse_manifest((BUILTINS[name] / "template.toml").read_bytes()).runtime
    if b"requirements" in (BUILTINS[name] / "hyac.toml").read_bytes():
        unreachable = _pypi_unreachable()
        if unreachable:
            pytest.skip(unreachable)
    if runtime != "python":
        missing = runtime_missing(runtime)
        if missing:
            pytest.skip(missing)
    tenant = name.replace("-", "")[:20]
    platform.tenant(tenant)
    as_cli(monkeypatch, platform.agent)
    fetched = fetch_template(name, None)
    fetched.write(tmp_path, name, tenant)
    manifest_text = (tmp_path / "hyac.toml").read_text()
    assert "{{" not in manifest_text, manifest_text  # every placeholder filled in
    project = load_project(tmp_path)
    results = deploy_functions(project, project.select(None), tenant)
    assert results and all(result["version"] >= 1 for result in results)

    sample = json.loads((tmp_path / fetched.sample).read_text())
    with platform.owner(tenant) as client:
        _check_schedules(client, project)
        for secret, value in (sample.get("secrets") or {}).items():
            assert client.put(f"/v1/secrets/{secret}", json={"value": value}).status_code in (200, 204)
        for channel, kind in (sample.get("channels") or {}).items():
            made = client.post("/v1/notify/channels", json={
                "name": channel, "type": kind, "url": receiver.url})
            assert made.status_code == 201, made.text
        answer = invoke_sample(client, sample)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["ok"], result
        expect = sample["expect"]
        body = base64.b64decode(result["body_b64"]).decode()
        assert result["status"] == expect["status"], body
        if "json" in expect:
            assert _subset(expect["json"], json.loads(body)), body
        for text in expect.get("contains", []):
            assert text in body, body
        for text in expect.get("absent", []):
            assert text not in body, body
        if "mail" in expect:
            _check_mail(smtp, expect["mail"])
        if "notified" in expect:
            wanted = expect["notified"]
            sent = eventually(lambda: next((raw.decode() for _, raw, _ in receiver.calls
                                            if wanted["contains"] in raw.decode()), None))
            assert json.loads(sent)  # the channel's own payload (Slack's, here)

            def delivered() -> bool | None:
                deliveries = client.get("/v1/notify/deliveries",
                                        params={"channel": wanted["channel"]}).json()
                return any(d["status"] == "delivered" for d in deliveries) or None

            eventually(delivered)
        if name == "image-thumbnails":
            _check_bomb_refused(client)
        if name == "markdown-to-html":
            _check_no_script(client)
        if "task_result" in expect:
            task_id = json.loads(body)["task_id"]

            def ended() -> dict | None:
                task = client.get(f"/v1/tasks/{task_id}").json()
                return task if task["status"] in ("succeeded", "dead", "cancelled") else None

            task = eventually(ended, timeout=60)
            assert task["status"] == "succeeded", task
            assert task["progress"] == pytest.approx(1.0)
            outcome = json.loads(base64.b64decode(task["result"]["body_b64"]))
            assert _subset(expect["task_result"], outcome), outcome
