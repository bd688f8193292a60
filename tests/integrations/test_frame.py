"""The integrations frame: the platform owner alone reads and changes integrations; the
agent's environment wins over the store and `show` says so; bad input is a 4xx naming
the setting with nothing saved; `hyac system integrations` on the command line."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from hyac_agent.config import AgentConfig
from hyac_agent.integrations import IntegrationService
from hyac_agent.integrations.mail import MailIntegration
from hyac_agent.integrations.storage import StorageIntegration
from hyac_common.errors import InvalidInput, NotFound
from tests.integrations.conftest import setting
from tests.tenancy.conftest import Platform
from tests.waiting import eventually

ROUTES = [("GET", "/v1/system/integrations", None), ("GET", "/v1/system/integrations/mail", None),
          ("PUT", "/v1/system/integrations/mail", {"settings": {"mail_from": "x@example.com"}}),
          ("DELETE", "/v1/system/integrations/mail", None),
          ("POST", "/v1/system/integrations/storage/test", None)]


def test_only_the_platform_owner_reaches_integrations(api_platform: Platform) -> None:
    api_platform.tenant("frame-t")
    admin = api_platform.user("frame-admin", "frame-t", "admin")
    for token in (admin, None):
        with api_platform.http(token, "frame-t") if token else api_platform.agent.http(None) as client:
            for method, path, body in ROUTES:
                answer = client.request(method, path, json=body)
                assert answer.status_code == (403 if token else 401), (method, path, answer.text)
                assert answer.json()["error"]["code"] in ("forbidden", "unauthorized")
    with api_platform.owner() as client:
        kinds = [view["kind"] for view in client.get("/v1/system/integrations").json()]
        assert {"mail", "storage"} <= set(kinds)
        assert client.get("/v1/system/integrations/mail").json()["updated_at"] is None
        audit = client.get("/v1/audit", params={"all": True}).json()
    refused = [e for e in audit if e["action"].startswith("integration.") and e["result"] == 403]
    assert {e["action"] for e in refused} == {"integration.set", "integration.unset",
                                             "integration.test"}


def test_bad_changes_are_refused_whole(api_platform: Platform) -> None:
    with api_platform.owner() as client:
        before = client.get("/v1/system/integrations/mail").json()
        cases = [
            ("mail", {"settings": {"timeout": "soon"}}, 400, "setting 'timeout' must be a number"),
            ("mail", {"settings": {"timeout": -1}}, 400, "at least"),
            ("mail", {"settings": {"mail_from": "a@example.com", "nope": 1}}, 400,
             "mail has no setting 'nope'"),
            ("mail", {"settings": {"url": "http://mail.example.com"}}, 400, "smtp:// or smtps://"),
            ("mail", {"settings": {"mail_from": "x\r\nBcc: y@example.com"}}, 400, "control characters"),
            ("mail", {"settings": {}}, 400, "at least one setting"),
            ("mail", {"values": {}}, 422, ""),
            ("nope", {"settings": {"a": 1}}, 404, "no integration 'nope'"),
            ("MAIL;1", {"settings": {"a": 1}}, 400, "invalid integration kind"),
        ]
        for kind, change, status, needle in cases:
            answer = client.put(f"/v1/system/integrations/{kind}", json=change)
            assert answer.status_code == status, (kind, change, answer.text)
            assert needle in answer.json()["error"]["message"], answer.text
        unknown = client.delete("/v1/system/integrations/mail", params={"setting": "colour"})
        assert unknown.status_code == 400
        assert client.get("/v1/system/integrations/mail").json() == before


def test_the_environment_wins_and_show_says_so(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    from hyac_agent.tenancy.store import TenancyStore

    TenancyStore(engine).create_schema()
    config = AgentConfig(data_dir=tmp_path, mail_from="Env <env@example.com>", s3_bucket="")
    service = IntegrationService(engine, tmp_path, config,
                                 [MailIntegration(), StorageIntegration(engine)])
    service.set("mail", {"mail_from": "store@example.com", "timeout": 5}, "owner")
    view = service.view("mail")
    assert setting(view.model_dump(), "mail_from") == {
        **setting(view.model_dump(), "mail_from"), "value": "Env <env@example.com>",
        "source": "env", "env": "HYAC_MAIL_FROM"}
    assert setting(view.model_dump(), "timeout")["source"] == "store"
    assert service.values("mail")["mail_from"] == "Env <env@example.com>"
    assert service.values("mail")["timeout"] == 5
    # An empty variable is no setting: the store applies.
    assert setting(service.view("storage").model_dump(), "bucket")["source"] == "default"
    # Another agent on the same store sees the change (here: at once, it reads fresh).
    other = IntegrationService(engine, tmp_path, AgentConfig(data_dir=tmp_path),
                               [MailIntegration(), StorageIntegration(engine)])
    assert other.view("mail").model_dump()["settings"][2]["value"] == "store@example.com"
    # What another agent changes reaches this one's consumers without a restart.
    assert other.values("mail")["timeout"] == 5
    service.set("mail", {"timeout": 7}, "owner")
    eventually(lambda: other.values("mail")["timeout"] == 7, timeout=30)
    with pytest.raises(NotFound):
        service.values("nope")
    with pytest.raises(InvalidInput):
        service.set("storage", {"backend": "s3"}, "owner")  # no bucket
    assert service.values("storage")["backend"] == "builtin"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(api_platform: Platform, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """`hyac system integrations ARGS` through the console script's entry point (the same
    parsing, errors and exit codes), talking to the in-process agent."""
    from hyac_cli import client
    from hyac_cli.main import run

    agent = api_platform.agent
    for name, value in {"NO_COLOR": "1", "COLUMNS": "200", "HYAC_URL": agent.url,
                        "HYAC_TOKEN": agent.token}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(client, "transport_factory", lambda: agent.transport)

    def call(*args: str, input: str = "") -> Ran:
        monkeypatch.setattr(sys, "argv", ["hyac", "system", "integrations", *args])
        monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        try:
            run()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return call


def test_the_command_line(cli: Callable[..., Ran]) -> None:
    shown = cli("show")
    assert shown.returncode == 0, shown.stderr
    assert "mail: Mail (SMTP) (not configured)" in shown.stdout and "storage:" in shown.stdout
    # NAME alone reads the value from stdin (a secret stays out of shell history).
    saved = cli("set", "storage", "prefix=hyac", "secret_key", "--json", input="s3cr3t-value\n")
    assert saved.returncode == 0, saved.stderr
    view = json.loads(saved.stdout)
    assert setting(view, "prefix")["value"] == "hyac/" and setting(view, "secret_key")["value"] == "set"
    assert "s3cr3t-value" not in saved.stdout
    text = cli("show", "storage").stdout
    assert "hyac/" in text and "store" in text and "s3cr3t" not in text
    tested = cli("test", "storage")
    assert tested.returncode != 0 and "storage is not configured" in tested.stderr
    for args, needle in [(("set", "mail", "timeout=soon"), "must be a number"),
                         (("test", "mail", "--to", "a@example.com"), "mail is not configured"),
                         (("set", "storage", "=x"), "is not NAME=VALUE")]:
        failed = cli(*args)
        assert failed.returncode != 0 and needle in failed.stderr, (args, failed.stderr)
        assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    as_json = cli("set", "nope", "a=1", "--json")
    assert as_json.returncode != 0
    assert "no integration 'nope'" in json.loads(as_json.stdout)["error"]["message"]
    unset = cli("unset", "storage", "--json")
    assert unset.returncode == 0 and setting(json.loads(unset.stdout), "prefix")["source"] == "default"
