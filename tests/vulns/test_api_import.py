"""The advisory database changed through the agent: the owner uploads OSV files
(POST /v1/system/vulndb/import, `hyac vulndb import`), and the agent refreshes its
configured feeds on a schedule. Either way every tenant's active versions and the
published templates are rescanned, new findings are kept with the version, and the
owner's vulnerabilities alert reaches a platform channel (a loopback receiver)."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hyac_common.wire import FunctionConfig
from tests.in_process import InProcessAgent
from tests.notify.conftest import Receiver, agent_with
from tests.templates.conftest import files_b64
from tests.templates.test_registry import HYAC_TOML, template
from tests.vulns.conftest import FIXTURES
from tests.vulns.test_scanning import PIP_LOCK
from tests.waiting import eventually

LATER = "GHSA-v845-jxx5-vc9f"  # urllib3, in FIXTURES/later only


def osv_zip(folder: Path, **extra: bytes) -> bytes:
    """An OSV ecosystem zip as OSV publishes it: one <id>.json per record."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.glob("*.json")):
            archive.writestr(path.name, path.read_bytes())
        for name, data in extra.items():
            archive.writestr(name, data)
    return out.getvalue()


class Feed:
    """A loopback HTTP server standing in for an OSV bucket: 404 until ``body`` is set."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                body = feed.body
                self.send_response(200 if body is not None else 404)
                self.send_header("content-length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/PyPI/all.zip"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def feed() -> Iterator[Feed]:
    served = Feed()
    yield served
    served.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    served = Receiver()
    yield served
    served.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, feed: Feed, receiver: Receiver
          ) -> Iterator[InProcessAgent]:
    with agent_with(tmp_path_factory.mktemp("vulndb-agent"),
                    HYAC_CALLBACK_ALLOW_CIDRS="127.0.0.0/8", HYAC_ALERT_INTERVAL="0.2",
                    HYAC_NOTIFY_BACKOFF="0", HYAC_VULNDB_REFRESH="0.5",
                    HYAC_VULNDB_FEEDS=feed.url,
                    HYAC_VULNDB_MAX_UPLOAD_BYTES=str(256 * 1024)) as running:
        with running.client() as owner:
            assert owner.post("/v1/notify/platform/channels", json={
                "name": "security", "type": "webhook", "url": receiver.url}).status_code == 201
            assert owner.post("/v1/notify/alerts", json={
                "kind": "vulnerabilities", "channel": "security"}).status_code == 201
        # a deployed version with a lock (requests 2.19.0, urllib3 1.24.1, six)
        running.agent.store.record_deploy("default", "fetcher", "d" * 64,
                                          "functions/fetcher.py", FunctionConfig(lock=PIP_LOCK))
        yield running


def alerts(receiver: Receiver) -> list[dict[str, Any]]:
    sent = [json.loads(raw) for _, raw, _ in receiver.calls]
    return [s for s in sent if s.get("kind") == "alert"
            and s["alert"]["kind"] == "vulnerabilities"]


def alert_naming(receiver: Receiver, words: str) -> dict[str, Any] | None:
    return next((a for a in alerts(receiver) if words in a["text"]), None)


def scan_of(agent: InProcessAgent, name: str) -> dict[str, Any]:
    with agent.client() as client:
        answer = client.get(f"/v1/functions/{name}/scan")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_the_owner_imports_advisories_and_everything_is_rescanned(
        agent: InProcessAgent, receiver: Receiver) -> None:
    files = template("pinned-requests")
    files.update(files_b64({"hyac.toml": HYAC_TOML + 'requirements = ["requests==2.19.0"]\n'}))
    with agent.client() as owner:
        published = owner.post("/v1/templates", json={"files_b64": files})
        assert published.status_code == 201, published.text
        assert published.json()["scan"]["status"] == "unknown"
        imported = owner.post("/v1/system/vulndb/import", params={"name": "PyPI-all.zip"},
                              content=osv_zip(FIXTURES / "PyPI"))
    assert imported.status_code == 200, imported.text
    summary = imported.json()
    assert summary["advisories"] == 8 and summary["ecosystems"] == ["PyPI"]
    [line] = summary["rescanned_with_new_findings"]
    assert line.startswith("default/fetcher v1: ") and "GHSA-x84v-xcm2-53pg" in line
    assert any(t.startswith("pinned-requests@1.0.0: ") and "GHSA-x84v-xcm2-53pg" in t
               for t in summary["templates_with_new_findings"])

    # recorded with the version and with the template
    report = scan_of(agent, "fetcher")
    assert report["result"]["status"] == "vulnerable"
    assert "GHSA-x84v-xcm2-53pg" in report["result"]["new"]
    with agent.client() as owner:
        shown = owner.get("/v1/templates/pinned-requests").json()
    assert shown["scan"]["status"] == "vulnerable"

    # the owner's vulnerabilities alert, for the tenant's version and for the template
    fired = eventually(lambda: alert_naming(receiver, "fetcher v1: "))
    assert fired["title"] == "New vulnerabilities: default" and fired["alert"]["state"] == "firing"
    assert "GHSA-x84v-xcm2-53pg" in fired["text"]
    template_alert = eventually(lambda: alert_naming(receiver, "template pinned-requests@1.0.0"))
    assert template_alert["title"] == "New vulnerabilities: templates"


def test_only_the_owner_imports_and_hostile_files_change_nothing(
        agent: InProcessAgent) -> None:
    with agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "team"}).status_code in (201, 409)
    with agent.client("team") as owner:
        assert owner.put("/v1/users/boss", json={"role": "admin"}).status_code == 200
        token = owner.post("/v1/tokens", json={"user": "boss", "tenant": "team"}).json()["token"]
    with agent.http(token, "team") as admin:
        refused = admin.post("/v1/system/vulndb/import", content=osv_zip(FIXTURES / "later"))
        assert refused.status_code == 403, refused.text
        assert admin.get("/v1/vulndb").status_code == 200  # reading the state is fine

    with agent.client() as owner:
        before = owner.get("/v1/vulndb").json()["advisories"]
        hostile = {
            # a path out of the archive, beside a good record
            "escape": osv_zip(FIXTURES / "later", **{"../../etc/cron.d/x.json": b"{}"}),
            "absolute": osv_zip(FIXTURES / "later", **{"/etc/passwd.json": b"{}"}),
            # a zip bomb: 9 MiB of zeros packed into a few KiB, over a record's size
            "bomb": osv_zip(FIXTURES / "later", **{"bomb.json": b"0" * (9 << 20)}),
            "not-json": b"\x00\x01 not an OSV file",
        }
        for name, body in hostile.items():
            answer = owner.post("/v1/system/vulndb/import", params={"name": name}, content=body)
            assert answer.status_code == 400, (name, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "invalid_advisory", error
            assert error["message"].startswith(name) and ".vulndb-upload-" not in error["message"]
        too_big = owner.post("/v1/system/vulndb/import", content=b"[" + b" " * (300 * 1024) + b"]")
        assert too_big.status_code == 413, too_big.text
        assert too_big.json()["error"]["code"] == "payload_too_large"
        empty = owner.post("/v1/system/vulndb/import", content=b"")
        assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
        odd = owner.post("/v1/system/vulndb/import", params={"name": "../x"}, content=b"{}")
        assert odd.status_code == 422
        assert owner.get("/v1/vulndb").json()["advisories"] == before  # nothing changed
    assert LATER not in json.dumps(scan_of(agent, "fetcher"))


def test_a_scheduled_refresh_imports_the_feed_and_alerts(
        agent: InProcessAgent, feed: Feed, receiver: Receiver) -> None:
    # the feed answered 404 so far: refreshes ran, imported nothing, found nothing new
    assert LATER not in json.dumps(scan_of(agent, "fetcher"))
    feed.body = osv_zip(FIXTURES / "later")
    eventually(lambda: scan_of(agent, "fetcher")["result"]["new"] == [LATER] or None)
    fired = eventually(lambda: alert_naming(receiver, f"fetcher v1: {LATER}"))
    assert fired["title"] == "New vulnerabilities: default"
    # later refreshes find nothing newer: the finding stays marked new, alerted once
    seen = scan_of(agent, "fetcher")["result"]["scanned_at"]
    again = eventually(lambda: (r := scan_of(agent, "fetcher")["result"])["scanned_at"] > seen
                       and r or None)
    assert again["new"] == [LATER]
    assert len([a for a in alerts(receiver) if LATER in a["text"]]) == 1
    with agent.client() as owner:
        status = owner.get("/v1/vulndb").json()
    assert status["ecosystems"]["PyPI"]["source"].startswith("feed http://127.0.0.1:")


def test_hyac_vulndb_import_and_status(agent: InProcessAgent, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from hyac_cli import client
    from hyac_cli.main import app

    monkeypatch.setenv("HYAC_URL", agent.url)
    monkeypatch.setenv("HYAC_TOKEN", agent.token)
    monkeypatch.setattr(client, "transport_factory", lambda: agent.transport)
    runner = CliRunner()
    dump = tmp_path / "npm-all.zip"
    dump.write_bytes(osv_zip(FIXTURES / "npm"))
    done = runner.invoke(app, ["vulndb", "import", str(dump), "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["advisories"] == 4
    text = runner.invoke(app, ["vulndb", "import", str(dump)], catch_exceptions=False)
    assert text.exit_code == 0 and "4 advisories imported (npm)" in text.stdout
    status = runner.invoke(app, ["vulndb", "status", "--json"], catch_exceptions=False)
    assert json.loads(status.stdout)["ecosystems"]["npm"]["advisories"] == 4
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    refused = runner.invoke(app, ["vulndb", "import", str(bad), "--json"])
    assert refused.exit_code != 0
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "invalid_advisory" and error["message"].startswith("bad.json: not JSON")
