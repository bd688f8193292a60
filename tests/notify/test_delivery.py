"""Channels and context.notify against real loopback receivers (the owner allows
127.0.0.0/8, as the task callbacks' tests do) and the real SMTP server process: each
channel type's payload, the generic webhook's signature, retries, a receiver that never
answers, the quota, and what a tenant cannot reach."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hyac_agent.tasks.callbacks import verify
from tests.in_process import InProcessAgent
from tests.notify.conftest import Receiver, Silent, agent_with
from tests.runtime_families.conftest import requires_runtime
from tests.waiting import eventually

NOTIFY = '''
from hyac_context import HostCallError

def main(context):
    args = context.request.json()
    try:
        return {"id": context.notify(args["channel"], args["text"], **args.get("fields", {}))}
    except HostCallError as exc:
        return {"error": exc.code, "message": exc.message}
'''


def body(payload: Any) -> dict[str, str]:
    return {"body_b64": base64.b64encode(json.dumps(payload).encode()).decode()}


def notify(agent: InProcessAgent, channel: str, text: str, tenant: str | None = None,
           **fields: Any) -> dict[str, Any]:
    answer = agent.invoke("notify", tenant, **body({"channel": channel, "text": text,
                                                     "fields": fields}))
    assert answer.status_code == 200, answer.text
    return json.loads(base64.b64decode(answer.json()["body_b64"]))  # type: ignore[no-any-return]


def delivery(agent: InProcessAgent, delivery_id: str, tenant: str | None = None,
             status: str = "delivered") -> dict[str, Any] | None:
    with agent.client(tenant) as client:
        for row in client.get("/v1/notify/deliveries").json():
            if row["id"] == delivery_id and row["status"] == status:
                return row  # type: ignore[no-any-return]
    return None


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessAgent]:
    with agent_with(tmp_path_factory.mktemp("notify-agent"),
                    HYAC_CALLBACK_ALLOW_CIDRS="127.0.0.0/8", HYAC_NOTIFY_BACKOFF="0",
                    HYAC_NOTIFY_RETRIES="1", HYAC_NOTIFY_TIMEOUT="1",
                    HYAC_ALERT_INTERVAL="0.2") as running:
        running.deploy("notify", NOTIFY)
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    served = Receiver()
    yield served
    served.close()


def add(agent: InProcessAgent, name: str, kind: str, tenant: str | None = None,
        **settings: Any) -> dict[str, Any]:
    with agent.client(tenant) as client:
        made = client.post("/v1/notify/channels", json={"name": name, "type": kind, **settings})
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def test_each_channel_type_gets_its_own_payload(agent: InProcessAgent, receiver: Receiver) -> None:
    made = {kind: add(agent, f"pay-{kind}", kind, url=receiver.url)
            for kind in ("slack", "discord", "teams", "webhook")}
    fields = {"region": "eu", "count": 3}
    for kind in made:
        sent = notify(agent, f"pay-{kind}", f"<!channel> deploy done via {kind} @everyone", **fields)
        assert sent["id"].startswith("ntf_"), sent
        eventually(lambda sent=sent: delivery(agent, sent["id"]))
    payloads = [(headers, json.loads(raw)) for headers, raw, _ in receiver.calls]
    assert len(payloads) == 4

    slack = next(p for _, p in payloads if "attachments" in p)
    assert slack["text"] == "&lt;!channel&gt; deploy done via slack @everyone"  # no channel ping
    assert {f["title"]: f["value"] for f in slack["attachments"][0]["fields"]} == {
        "region": "eu", "count": "3"}

    discord = next(p for _, p in payloads if "content" in p)
    assert discord["allowed_mentions"] == {"parse": []}  # @everyone pings no one
    assert [f["name"] for f in discord["embeds"][0]["fields"]] == ["region", "count"]

    teams = next(p for _, p in payloads if p.get("type") == "message")
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"].endswith("via teams @everyone")
    assert card["body"][1] == {"type": "FactSet", "facts": [{"title": "region", "value": "eu"},
                                                            {"title": "count", "value": "3"}]}

    headers, hook = next((h, p) for h, p in payloads if p.get("kind") == "message")
    raw = next(raw for h, raw, _ in receiver.calls if h is headers)
    key = made["webhook"]["signing_key"]
    assert verify(key, headers, raw, tenant="default")
    assert not verify(key, headers, raw + b" ", tenant="default")
    assert not verify(key.replace("a", "b", 1) + "0", headers, raw, tenant="default")
    assert hook["tenant"] == "default" and hook["fields"] == {"region": "eu", "count": "3"}
    assert headers["x-hyac-delivery"] == hook["id"]

    # the URL and the key are never shown again
    with agent.client() as client:
        listed = client.get("/v1/notify/channels").json()
    text = json.dumps(listed)
    assert receiver.url not in text and key not in text
    assert {c["name"]: c["target"] for c in listed}["pay-slack"] == "http://127.0.0.1"


def test_a_failed_attempt_is_retried_and_a_final_answer_is_not(
        agent: InProcessAgent, receiver: Receiver) -> None:
    add(agent, "flaky", "slack", url=receiver.url)
    receiver.answers = [503]
    sent = notify(agent, "flaky", "after one 503")
    row = eventually(lambda: delivery(agent, sent["id"]))
    assert row["attempts"] == 2 and len(receiver.calls) == 2

    receiver.answers = [404]
    sent = notify(agent, "flaky", "to a removed hook")
    row = eventually(lambda: delivery(agent, sent["id"], status="failed"))
    assert row["attempts"] == 1 and "HTTP 404" in row["last_error"]


def test_a_receiver_that_never_answers_holds_nothing_else_up(
        agent: InProcessAgent, receiver: Receiver) -> None:
    silent = Silent()
    try:
        add(agent, "silent", "webhook", url=silent.url)
        add(agent, "awake", "discord", url=receiver.url)
        stuck = [notify(agent, "silent", f"into the void {n}")["id"] for n in range(4)]
        fine = notify(agent, "awake", "still delivered")["id"]
        eventually(lambda: delivery(agent, fine))
        # and the agent itself answers at once meanwhile
        with agent.client() as client:
            assert client.get("/v1/health").status_code == 200
        row = eventually(lambda: delivery(agent, stuck[0], status="failed"))
        assert row["attempts"] == 2 and "no answer" in (row["last_error"] or "")
    finally:
        silent.close()


def test_a_tenant_reaches_only_its_own_channels_and_shared_platform_ones(
        agent: InProcessAgent, receiver: Receiver) -> None:
    with agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "rival"}).status_code in (201, 409)
    agent.deploy("notify", NOTIFY, tenant="rival")
    add(agent, "rivals-hook", "slack", tenant="rival", url=receiver.url)
    refused = notify(agent, "rivals-hook", "peek")
    assert refused["error"] == "not_found"
    assert notify(agent, "../rival/rivals-hook", "peek")["error"] in ("not_found", "invalid_input")

    with agent.client() as owner:
        made = owner.post("/v1/notify/platform/channels",
                          json={"name": "ops", "type": "slack", "url": receiver.url})
        assert made.status_code == 201, made.text
    assert notify(agent, "platform/ops", "not shared")["error"] == "not_found"
    with agent.client() as owner:
        owner.post("/v1/notify/platform/channels",
                   json={"name": "status", "type": "slack", "url": receiver.url, "shared": True})
        assert "platform/status" in [c["name"] for c in owner.get("/v1/notify/channels").json()]
    sent = notify(agent, "platform/status", "shared with every tenant", tenant="rival")
    eventually(lambda: delivery(agent, sent["id"], tenant="rival"))
    # the rival's log shows its own sends only
    with agent.client("rival") as client:
        senders = {row["sender"] for row in client.get("/v1/notify/deliveries").json()}
    assert senders == {"rival"}


def test_the_notifications_per_day_quota(agent: InProcessAgent, receiver: Receiver) -> None:
    with agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "frugal"}).status_code in (201, 409)
    with agent.client("frugal") as owner:
        assert owner.put("/v1/quotas", json={"values": {"notifications_per_day": 1}}).status_code == 200
    agent.deploy("notify", NOTIFY, tenant="frugal")
    add(agent, "hook", "slack", tenant="frugal", url=receiver.url)
    assert "id" in notify(agent, "hook", "one", tenant="frugal")
    refused = notify(agent, "hook", "two", tenant="frugal")
    assert refused["error"] == "quota_exceeded" and "notifications_per_day" in refused["message"]
    with agent.client("frugal") as client:  # nor can a test get round it
        tested = client.post("/v1/notify/channels/hook/test")
        assert tested.status_code == 429 and tested.json()["error"]["code"] == "quota_exceeded"


def test_bad_input_is_refused_whole(agent: InProcessAgent, receiver: Receiver) -> None:
    with agent.client() as client:
        for wrong in ({"name": "x", "type": "pager", "url": receiver.url},
                      {"name": "Bad Name", "type": "slack", "url": receiver.url},
                      {"name": "nourl", "type": "slack"},
                      {"name": "ftp", "type": "slack", "url": "ftp://example.com/x"},
                      {"name": "mail", "type": "email", "to": ["not an address"]}):
            answer = client.post("/v1/notify/channels", json=wrong)
            assert answer.status_code == 400, (wrong, answer.text)
            assert set(answer.json()["error"]) >= {"code", "message"}
        names = [c["name"] for c in client.get("/v1/notify/channels").json()]
        assert not {"x", "nourl", "ftp", "mail"} & set(names)
        add(agent, "twice", "slack", url=receiver.url)
        assert client.post("/v1/notify/channels", json={
            "name": "twice", "type": "slack", "url": receiver.url}).status_code == 409
    assert notify(agent, "no-such-channel", "hello")["error"] == "not_found"
    assert notify(agent, "twice", "")["error"] == "invalid_input"


def test_alerts_fire_once_and_resolve(agent: InProcessAgent, receiver: Receiver) -> None:
    with agent.client() as owner:
        made = owner.post("/v1/notify/platform/channels",
                          json={"name": "pager", "type": "webhook", "url": receiver.url})
        assert made.status_code == 201, made.text
        rule = owner.post("/v1/notify/alerts", json={"kind": "quota", "channel": "pager"})
        assert rule.status_code == 201, rule.text
        for wrong in ({"kind": "nonsense", "channel": "pager"},
                      {"kind": "quota", "channel": "nowhere"},
                      {"kind": "quota", "channel": "pager", "options": {"window": 60}},
                      {"kind": "error_rate", "channel": "pager", "options": {"min_calls": 1e308}},
                      {"kind": "error_rate", "channel": "pager", "options": {"threshold": 2}},
                      {"kind": "error_rate", "channel": "pager", "options": {"window": "soon"}}):
            refused = owner.post("/v1/notify/alerts", json=wrong)
            assert refused.status_code in (400, 404), (wrong, refused.text)
        assert len(owner.get("/v1/notify/alerts").json()["rules"]) == 1  # nothing half-saved
        assert owner.post("/v1/tenants", json={"name": "busy"}).status_code in (201, 409)
    with agent.client("busy") as owner:
        assert owner.put("/v1/quotas", json={"values": {"notifications_per_day": 2}}).status_code == 200
    agent.deploy("notify", NOTIFY, tenant="busy")
    add(agent, "self", "slack", tenant="busy", url=receiver.url)
    notify(agent, "self", "one", tenant="busy")
    notify(agent, "self", "two", tenant="busy")

    def alerts(state: str) -> set[str]:  # busy's alert keys in that state, each once
        found = [json.loads(raw)["alert"] for _, raw, _ in receiver.calls
                 if json.loads(raw).get("kind") == "alert"]
        keys = [a["key"] for a in found if ":busy:" in a["key"] and a["state"] == state]
        assert len(keys) == len(set(keys)), keys
        return set(keys)

    expected = {"quota:busy:notifications_per_day:80", "quota:busy:notifications_per_day:100"}
    eventually(lambda: alerts("firing") == expected)
    with agent.client() as owner:
        active = owner.get("/v1/notify/alerts").json()["active"]
        assert len([a for a in active if ":busy:" in a["key"]]) == 2
    with agent.client("busy") as owner:
        assert owner.put("/v1/quotas", json={"values": {"notifications_per_day": 100}}).status_code == 200
    eventually(lambda: alerts("resolved") == expected)
    assert alerts("firing") == expected  # still once each
    with agent.client() as owner:
        active = owner.get("/v1/notify/alerts").json()["active"]
        assert not [a for a in active if ":busy:" in a["key"]]
        logged = owner.get("/v1/notify/platform/deliveries", params={"channel": "pager"}).json()
    assert {row["source"] for row in logged} == {"alert"}


def test_an_email_channel_sends_through_the_smtp_server(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("aiosmtpd", reason="aiosmtpd is not installed (pip install -e '.[test]')")
    from tests.integration.test_mail import start_smtp

    server = start_smtp(tmp_path_factory.mktemp("smtp"))
    try:
        with agent_with(tmp_path_factory.mktemp("mail-agent"),
                        HYAC_SMTP_URL=f"smtp://127.0.0.1:{server.port}?starttls=no",
                        HYAC_MAIL_FROM="Hyac <noreply@example.com>") as running:
            add(running, "oncall", "email", to=["ops@example.com", "lead@example.com"])
            with running.client() as client:
                sent = client.post("/v1/notify/channels/oncall/test")
                assert sent.status_code == 202, sent.text
            eventually(lambda: delivery(running, sent.json()["id"]))
        envelope, message = server.received()[0]
        assert sorted(envelope["rcpt_tos"]) == ["lead@example.com", "ops@example.com"]
        assert message["Subject"] == "Hyac test notification"
        assert "this channel works" in message.get_content()
    finally:
        server.stop()


def test_platform_channels_are_the_owners(agent: InProcessAgent, receiver: Receiver,
                                          tmp_path: Path) -> None:
    with agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "team"}).status_code in (201, 409)
    with agent.client("team") as owner:
        assert owner.put("/v1/users/dev", json={"role": "developer"}).status_code == 200
        token = owner.post("/v1/tokens", json={"user": "dev", "tenant": "team"}).json()["token"]
    with agent.http(token, "team") as dev:
        assert dev.post("/v1/notify/platform/channels", json={
            "name": "mine", "type": "slack", "url": receiver.url}).status_code == 403
        assert dev.post("/v1/notify/channels", json={  # channels are the tenant admin's
            "name": "mine", "type": "slack", "url": receiver.url}).status_code == 403
        assert dev.get("/v1/notify/platform/deliveries").status_code == 403
        assert dev.get("/v1/notify/channels").status_code == 200


NODE_NOTIFY = """
export async function main(context) {
  // each runtime's function sends to the channel named as it is
  const id = await context.notify(context.function.name, "hello from JavaScript",
                                  { build: 42, ok: true });
  let refused = null;
  try {
    await context.notify("nowhere", "lost");
  } catch (error) {
    refused = error.code;
  }
  return { id, refused };
}
"""


@pytest.mark.parametrize("runtime", [pytest.param(name, marks=requires_runtime(name))
                                     for name in ("node20", "deno")])
def test_a_javascript_function_notifies(agent: InProcessAgent, receiver: Receiver,
                                        runtime: str) -> None:
    add(agent, f"js{runtime}", "slack", url=receiver.url)
    receiver_calls = len(receiver.calls)
    entry = f"functions/js{runtime}.mjs"
    with agent.client() as client:
        deployed = client.put(f"/v1/functions/js{runtime}", json={
            "entry": entry, "files_b64": {entry: base64.b64encode(NODE_NOTIFY.encode()).decode()},
            "config": {"runtime": runtime}})
        assert deployed.status_code in (200, 201), deployed.text
    answer = agent.invoke(f"js{runtime}")
    assert answer.status_code == 200, answer.text
    result = json.loads(base64.b64decode(answer.json()["body_b64"]))
    assert result["refused"] == "not_found" and result["id"].startswith("ntf_")
    eventually(lambda: delivery(agent, result["id"]))
    sent = json.loads(receiver.calls[receiver_calls][1])
    assert sent["text"] == "hello from JavaScript"
    assert {f["title"]: f["value"] for f in sent["attachments"][0]["fields"]} == {
        "build": "42", "ok": "true"}


def test_a_tenant_made_again_under_a_removed_name_has_no_channels(
        agent: InProcessAgent, receiver: Receiver) -> None:
    with agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "fleeting"}).status_code == 201
    add(agent, "old-hook", "slack", tenant="fleeting", url=receiver.url)
    with agent.client("fleeting") as client:
        assert client.post("/v1/notify/channels/old-hook/test").status_code == 202
    with agent.client() as owner:
        assert owner.delete("/v1/tenants/fleeting").status_code in (200, 204)
        assert owner.post("/v1/tenants", json={"name": "fleeting"}).status_code == 201
    with agent.client("fleeting") as client:
        assert [c for c in client.get("/v1/notify/channels").json() if not c["platform"]] == []
        assert client.get("/v1/notify/deliveries").json() == []


class Gate:
    """A receiver that holds every request until ``open()``, then answers 200."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.calls: list[tuple[dict[str, str], bytes]] = []
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["content-length"]))
                gate.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                gate.opened.wait()
                with contextlib.suppress(OSError):  # the first sender may be gone
                    self.send_response(200)
                    self.send_header("content-length", "0")
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_notification_in_flight_survives_a_restart(
        tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> None:
    data = tmp_path_factory.mktemp("restart-agent")
    settings = {"HYAC_CALLBACK_ALLOW_CIDRS": "127.0.0.0/8", "HYAC_NOTIFY_TIMEOUT": "60"}
    gate = Gate()
    try:
        with agent_with(data, **settings) as first:
            add(first, "durable", "webhook", url=gate.url)
            with first.client() as owner:  # and the next start is told to the owner
                assert owner.post("/v1/notify/platform/channels", json={
                    "name": "boot", "type": "slack", "url": receiver.url}).status_code == 201
                assert owner.post("/v1/notify/alerts", json={
                    "kind": "agent_restarted", "channel": "boot"}).status_code == 201
            started = len(receiver.calls)
            with first.client() as client:
                sent = client.post("/v1/notify/channels/durable/test").json()["id"]
            eventually(lambda: gate.calls)  # being sent when the agent stops
        with agent_with(data, **settings) as second:
            gate.opened.set()
            row = eventually(lambda: delivery(second, sent))
        assert len(gate.calls) == 2 and row["attempts"] == 1
        assert {headers["x-hyac-delivery"] for headers, _ in gate.calls} == {sent}
        told = [json.loads(raw)["text"] for _, raw, _ in receiver.calls[started:]]
        assert any("Hyac agent started" in text for text in told), told
    finally:
        gate.close()


def test_error_rate_and_dead_task_alerts(agent: InProcessAgent, receiver: Receiver) -> None:
    with agent.client() as owner:
        assert owner.post("/v1/notify/platform/channels", json={
            "name": "watch", "type": "webhook", "url": receiver.url}).status_code == 201
        for kind, options in (("error_rate", {"threshold": 0.5, "min_calls": 2, "window": "1m"}),
                              ("task_dead", {})):
            made = owner.post("/v1/notify/alerts", json={"kind": kind, "channel": "watch",
                                                         "options": options})
            assert made.status_code == 201, made.text
    agent.deploy("boom", "def main(context):\n    raise RuntimeError('kaboom')\n", retries=0)
    for _ in range(2):
        failed = agent.invoke("boom")
        assert failed.status_code == 200 and failed.json()["error"]["type"] == "RuntimeError"
    with agent.client() as client:
        queued = client.post("/v1/functions/boom/invoke", params={"mode": "async"}, json={})
        assert queued.status_code == 202, queued.text
    task_id = queued.json()["task_id"]

    def alert(kind: str) -> dict[str, Any] | None:
        for _, raw, _ in receiver.calls:
            sent = json.loads(raw)
            if sent.get("kind") == "alert" and sent["alert"]["kind"] == kind:
                return sent  # type: ignore[no-any-return]
        return None

    rate = eventually(lambda: alert("error_rate"))
    assert rate["alert"]["key"] == "error_rate:default/boom" and rate["fields"]["failed"] in ("2", "3")
    dead = eventually(lambda: alert("task_dead"))
    assert dead["fields"] == {"tenant": "default", "function": "boom", "task": task_id}
    assert "kaboom" in dead["text"]


def test_the_log_forgets_what_is_over_after_its_retention(
        tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> None:
    with agent_with(tmp_path_factory.mktemp("prune-agent"),
                    HYAC_CALLBACK_ALLOW_CIDRS="127.0.0.0/8") as running:
        add(running, "kept", "slack", url=receiver.url)
        with running.client() as client:
            sent = client.post("/v1/notify/channels/kept/test").json()["id"]
        eventually(lambda: delivery(running, sent))
        deliveries = running.agent.notify.deliveries
        assert deliveries.prune(before=time.time() - 3600) == 0  # too young to go
        assert deliveries.prune(before=time.time() + 1) == 1
        assert delivery(running, sent) is None


def test_new_vulnerability_findings_reach_the_owner(agent: InProcessAgent,
                                                    receiver: Receiver) -> None:
    from sqlalchemy import insert

    from hyac_agent.tenancy.tables import audit

    with agent.client() as owner:
        assert owner.post("/v1/notify/platform/channels", json={
            "name": "security", "type": "teams", "url": receiver.url}).status_code == 201
        assert owner.post("/v1/notify/alerts", json={
            "kind": "vulnerabilities", "channel": "security"}).status_code == 201
    from hyac_agent.notify.tables import alert_state

    def looked() -> bool:  # what happened before the alerts' first look is not sent
        with agent.agent.store.engine.connect() as conn:
            return conn.execute(alert_state.select().where(
                alert_state.c.key == "cursor:vulnerabilities")).first() is not None

    eventually(looked)
    # what a rescan that finds new advisories writes (hyac_agent/vulns/service.py)
    with agent.agent.store.engine.begin() as conn:
        conn.execute(insert(audit).values(
            ts=time.time(), actor="hyac-agent", actor_kind="agent", actor_id="agent",
            tenant="default", action="vulnerabilities_found",
            target="report v3: GHSA-aaaa-bbbb-cccc", result=200))

    def card() -> dict[str, Any] | None:
        for _, raw, _ in receiver.calls:
            sent = json.loads(raw)
            if sent.get("type") == "message" and "GHSA-aaaa-bbbb-cccc" in raw.decode():
                return sent["attachments"][0]["content"]  # type: ignore[no-any-return]
        return None

    found = eventually(card)
    title, text = found["body"][0], found["body"][1]
    assert title["text"] == "New vulnerabilities: default" and title["color"] == "Attention"
    assert "report v3: GHSA-aaaa-bbbb-cccc" in text["text"]


def test_a_tenant_has_a_bounded_number_of_channels(
        agent: InProcessAgent, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from hyac_agent.notify import channels

    monkeypatch.setattr(channels, "MAX_CHANNELS", 2)
    with agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "capped"}).status_code == 201
    add(agent, "one", "slack", tenant="capped", url=receiver.url)
    add(agent, "two", "slack", tenant="capped", url=receiver.url)
    with agent.client("capped") as client:
        third = client.post("/v1/notify/channels", json={"name": "three", "type": "slack",
                                                          "url": receiver.url})
        assert third.status_code == 400 and "at most 2" in third.json()["error"]["message"]
        assert len(client.get("/v1/notify/channels").json()) == 2 + len(
            [c for c in client.get("/v1/notify/channels").json() if c["platform"]])


def test_a_hung_receiver_holds_two_slots_and_no_more(
        tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> None:
    gate = Gate()
    try:
        with agent_with(tmp_path_factory.mktemp("fair-agent"), HYAC_NOTIFY_TIMEOUT="60",
                        HYAC_CALLBACK_ALLOW_CIDRS="127.0.0.0/8") as running:
            add(running, "hung", "webhook", url=gate.url)
            add(running, "fine", "slack", url=receiver.url)
            with running.client() as client:
                held = [client.post("/v1/notify/channels/hung/test").json()["id"]
                        for _ in range(10)]
                eventually(lambda: len(gate.calls) == 2)
                sent = client.post("/v1/notify/channels/fine/test").json()["id"]
            eventually(lambda: delivery(running, sent))  # while all ten still wait
            assert len(gate.calls) == 2  # two at a time to the hung receiver, never eight
            gate.opened.set()
            for delivery_id in held:
                eventually(lambda delivery_id=delivery_id: delivery(running, delivery_id))
    finally:
        gate.close()


def test_two_agents_on_one_store_send_each_alert_once(
        tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> None:
    data = tmp_path_factory.mktemp("pair")
    settings = {"HYAC_CALLBACK_ALLOW_CIDRS": "127.0.0.0/8", "HYAC_ALERT_INTERVAL": "0.1"}
    with agent_with(data, **settings) as first, agent_with(data, **settings) as second:
        with first.client() as owner:
            assert owner.post("/v1/notify/platform/channels", json={
                "name": "pager", "type": "webhook", "url": receiver.url}).status_code == 201
            assert owner.post("/v1/notify/alerts", json={
                "kind": "quota", "channel": "pager"}).status_code == 201
            assert owner.put("/v1/quotas", json={"values": {"functions": 1}}).status_code == 200
        first.deploy("only", "def main(context):\n    return 1\n")  # 1 of 1 function

        def keys() -> list[str]:
            return [json.loads(raw)["alert"]["key"] for _, raw, _ in receiver.calls
                    if json.loads(raw).get("kind") == "alert"]

        eventually(lambda: len(keys()) >= 2)
        # both agents looked many times meanwhile; each condition was told once
        for agent_running in (first, second):
            store = agent_running.agent.notify.alerts
            eventually(lambda store=store: len(store.active()) == 2)
        delivered = lambda: [r for r in first.client().get(  # noqa: E731
            "/v1/notify/platform/deliveries").json() if r["status"] == "delivered"]
        eventually(lambda: len(delivered()) == 2)
    assert sorted(keys()) == ["quota:default:functions:100", "quota:default:functions:80"]
