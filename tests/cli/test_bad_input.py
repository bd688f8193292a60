"""Careless input gets one line on stderr and a non-zero exit, and never reaches a
route it was not meant for."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from hyac_cli import client, templates

from .conftest import Run
from .fake_agent import FakeAgent


def one_line_error(result: Any, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    return str(result.stderr)


@pytest.mark.parametrize("args", [
    ("env", "rm", "../functions/hello"),
    ("secret", "rm", "../functions/hello"),
    ("user", "rm", "../functions/hello"),
    ("token", "revoke", "../functions/hello"),
    ("tasks", "cancel", "../functions/hello"),
    ("tenant", "rm", "--yes", "../v1/functions/hello"),
    ("runtime", "rm", "../functions/hello"),
])
def test_names_never_climb_into_another_route(run: Run, fake_agent: FakeAgent, args: tuple) -> None:
    run(*args)
    for request in fake_agent.requests:
        assert b".." not in request.url.raw_path.split(b"/"), request.url
        assert not request.url.path.startswith("/v1/functions"), request.url


@pytest.mark.parametrize("args", [("tasks", "show", ".."), ("secret", "rm", "."), ("env", "rm", "..")])
def test_dot_names_are_refused_before_sending(run: Run, fake_agent: FakeAgent, args: tuple) -> None:
    assert "invalid" in one_line_error(run(*args))
    assert fake_agent.requests == []


def test_a_dot_segment_never_leaves_the_client(fake_agent: FakeAgent) -> None:
    from hyac_common.errors import InvalidInput

    with client.connect() as agent, pytest.raises(InvalidInput):
        agent.delete("/v1/env/../functions/hello")
    assert fake_agent.requests == []


@pytest.mark.parametrize("url", ["http://[::1", "ftp://agent", "agent.example:8040", "http://"])
def test_invalid_agent_url(run: Run, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("HYAC_URL", url)
    message = one_line_error(run("ls"))
    assert f"invalid agent URL {url!r} (from HYAC_URL)" in message


def test_login_refuses_a_url_that_is_not_one(run: Run) -> None:
    assert "invalid agent URL 'notaurl'" in one_line_error(run("login", "notaurl", "--token", "t"))


def test_unreachable_remote_agent_is_not_told_to_start_one(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setenv("HYAC_URL", "https://hyac.example.com")
    monkeypatch.setattr(client, "transport_factory", lambda: httpx.MockTransport(refuse))
    message = one_line_error(run("ls"), code=1)
    assert message == "Error: cannot reach the agent at https://hyac.example.com (connection refused)\n"


def test_a_garbled_manifest_is_not_silently_another_tenant(
    run: Run, fake_agent: FakeAgent, project: Path
) -> None:
    (project / "hyac.toml").write_text('[project\nname = "demo"\ntenant = "acme"\n')
    for args in (("ls",), ("rm", "--yes", "hello"), ("invoke", "hello")):
        message = one_line_error(run(*args))
        assert message.startswith("Error: hyac.toml:1: invalid TOML")
        assert "--tenant" in message
    assert fake_agent.requests == []
    assert run("ls", "--tenant", "acme").exit_code == 0


def test_a_manifest_tenant_that_is_no_name(run: Run, fake_agent: FakeAgent, project: Path) -> None:
    (project / "hyac.toml").write_text('[project]\nname = "demo"\ntenant = "../acme"\n')
    assert "invalid tenant name '../acme'" in one_line_error(run("ls"))
    assert fake_agent.requests == []


def test_a_manifest_that_is_not_text(run: Run, fake_agent: FakeAgent, project: Path) -> None:
    (project / "hyac.toml").write_bytes(b'[project]\nname = "\xc0\xff"\n')
    for args in (("deploy",), ("ls",)):
        assert "hyac.toml:2: not UTF-8 text" in one_line_error(run(*args))


@pytest.mark.parametrize("setting, line", [
    ("timeout = inf", 'functions.hello.timeout = inf'),
    ("sample = { n = nan }", "functions.hello.sample.n = nan"),
    ("retries = 99999999999999999999", "functions.hello.retries = 99999999999999999999"),
])
def test_manifest_numbers_json_cannot_carry(
    run: Run, fake_agent: FakeAgent, project: Path, setting: str, line: str
) -> None:
    with (project / "hyac.toml").open("a") as manifest:
        manifest.write(f"\n[functions.hello]\n{setting}\n")
    message = one_line_error(run("deploy"))
    assert message.startswith(f"Error: hyac.toml:7: {line}: numbers must be finite")
    assert fake_agent.requests == []


def test_a_garbled_config_file(run: Run, fake_agent: FakeAgent) -> None:
    config = Path(os.environ["HYAC_CONFIG_DIR"]) / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[[[\n")
    message = one_line_error(run("profile", "ls"))
    assert f"{config} is not valid TOML" in message


def test_an_empty_secret_is_refused(run: Run, fake_agent: FakeAgent) -> None:
    for args, stdin in ((("secret", "set", "API_KEY"), ""), (("secret", "set", "API_KEY="), None)):
        assert "secret 'API_KEY' is empty" in one_line_error(run(*args, input=stdin))
    assert fake_agent.requests == []


def test_the_hello_template_reads_json_whatever_its_content_type() -> None:
    namespace: dict[str, Any] = {"FunctionContext": object}
    exec(compile(templates.HELLO, "functions/hello.py", "exec"), namespace)

    def call(body: bytes, content_type: str) -> Any:
        request = SimpleNamespace(
            query={}, headers={"content-type": content_type},
            json=lambda: json.loads(body) if body else None,
        )
        context = SimpleNamespace(request=request, logger=SimpleNamespace(info=print))
        return asyncio.run(namespace["main"](context))

    # what `curl -d '{"name": "Grace"}'` sends, as the README's tour does
    assert call(b'{"name": "Grace"}', "application/x-www-form-urlencoded") == {"hello": "Grace"}
    assert call(b"name=Grace", "application/x-www-form-urlencoded") == {"hello": "world"}
    assert call(b"", "") == {"hello": "world"}
