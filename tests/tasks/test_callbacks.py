"""Completion webhooks: where they may go (no loopback, private or metadata addresses in
any spelling, no redirects, no DNS tricks), who may set them, and how they are signed
(a key per tenant, over the tenant and a timestamp), checked by real HTTP servers."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, delete, select

from hyac_agent.tasks.callbacks import CallbackKeys, post, sign, verify
from hyac_agent.tasks.destinations import (
    Destination,
    RefusedDestination,
    choose_address,
    literal_address,
    local_addresses,
    parse_allowed,
    refusal,
)
from hyac_agent.tenancy.store import TenancyStore
from hyac_agent.tenancy.tables import tenants
from tests.conftest import RunningAgent, start_agent
from tests.tasks.helpers import FAST_TASKS, submit, wait_for
from tests.waiting import eventually

REPORT = "def main(context):\n    return {'made': 'report'}\n"


class Receiver:
    """An HTTP server on loopback that records each POST and answers with the next
    status of ``answers`` (then 200); ``location`` makes its answers redirects."""

    def __init__(self, answers: list[int] | None = None, host: str = "127.0.0.1",
                 location: str = "") -> None:
        self.answers = list(answers or [])
        self.calls: list[tuple[dict[str, str], bytes, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body,
                                       time.time()))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(302 if location else status)
                if location:
                    self.send_header("location", location)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def prove_reachable(self) -> None:
        """A POST straight to the server arrives: its silence later means something."""
        planned = list(self.answers)
        httpx.post(self.url, content=b"{}", timeout=10, trust_env=False)
        assert len(self.calls) == 1
        self.calls.clear()
        self.answers = planned

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    served = Receiver([500])
    yield served
    served.close()


@pytest.fixture
def receiver6() -> Iterator[Receiver]:
    try:
        served = Receiver(host="::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    yield served
    served.close()


def _agent(env: dict[str, str]) -> Iterator[RunningAgent]:
    import shutil

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    running = start_agent(Path(os.environ["HYAC_DATA_DIR"]), "--sandbox", "bwrap",
                          env={**FAST_TASKS, **env})
    yield running
    running.kill(signal.SIGTERM)


@pytest.fixture
def strict_agent(isolation: Path) -> Iterator[RunningAgent]:
    """An agent with the default policy: callbacks go to public addresses only."""
    yield from _agent({})


@pytest.fixture
def open_agent(isolation: Path) -> Iterator[RunningAgent]:
    """An agent whose owner allows callbacks to loopback (receivers on the host)."""
    yield from _agent({"HYAC_CALLBACK_ALLOW_CIDRS": "127.0.0.0/8, ::1/128",
                       "HYAC_CALLBACK_RETRIES": "2"})


def _token(agent: RunningAgent, tenant: str, user: str, role: str) -> str:
    with agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": tenant}).status_code in (201, 409)
    with agent.client(tenant) as owner:
        assert owner.put(f"/v1/users/{user}", json={"role": role}).status_code == 200
        made = owner.post("/v1/tokens", json={"user": user, "tenant": tenant})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def _as(agent: RunningAgent, token: str, tenant: str) -> httpx.Client:
    return httpx.Client(base_url=agent.url, timeout=60,
                        headers={"Authorization": f"Bearer {token}", "X-Hyac-Tenant": tenant})


def _key(agent: RunningAgent, tenant: str | None = None) -> str:
    with agent.client(tenant) as client:
        answer = client.get("/v1/tasks/callback-key")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["key"])


# the address check, without a network ---------------------------------------------------


@pytest.mark.parametrize("spelling", [
    "127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", "0x7f000001", "::1",
    "::ffff:127.0.0.1", "::ffff:7f00:1", "0.0.0.0", "::", "169.254.169.254", "fe80::1",
    "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "fc00::1", "224.0.0.1", "ff02::1",
    "240.0.0.1", "255.255.255.255", "64:ff9b::7f00:1", "2002:7f00:1::", "2002:a9fe:a9fe::",
    "198.18.0.1", "192.0.0.8",
])
def test_every_spelling_of_a_non_public_address_is_refused(spelling: str) -> None:
    address = literal_address(spelling)
    assert address is not None, spelling
    assert refusal(address, []) is not None


def test_public_and_allowed_addresses_pass() -> None:
    for public in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
        assert refusal(ipaddress.ip_address(public), []) is None
    assert literal_address("hooks.example.com") is None
    allowed = parse_allowed(["127.0.0.0/8", "10.1.0.0/16"])
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) is None
    assert refusal(ipaddress.ip_address("10.1.2.3"), allowed) is None
    assert refusal(ipaddress.ip_address("10.2.0.1"), allowed) == "a private address"
    # The agent's own public address is refused like loopback.
    own = {ipaddress.ip_address("8.8.8.8")}
    assert refusal(ipaddress.ip_address("8.8.8.8"), [], own) == "an address of this agent"


@pytest.mark.skipif(not Path("/proc/net/fib_trie").exists(), reason="reads Linux's /proc")
def test_the_agents_own_addresses_are_known() -> None:
    own = local_addresses()
    assert ipaddress.ip_address("127.0.0.1") in own
    inet6 = Path("/proc/net/if_inet6")
    if inet6.exists() and "0" * 31 + "1 " in inet6.read_text():
        # ::1 where the host has IPv6 (a container may have it turned off)
        assert ipaddress.ip_address("::1") in own
    try:
        host = {ipaddress.ip_address(str(info[4][0]).split("%")[0])
                for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        host = set()
    assert host <= own  # the addresses this host's name gives are among them


def test_a_name_is_refused_if_any_of_its_addresses_is() -> None:
    # What getaddrinfo may answer for a name the tenant controls.
    hook = Destination("https://hooks.example.com/x", "https", "hooks.example.com", 443)
    pinned = choose_address(hook, ["93.184.215.14", "2606:2800:21f:cb07::1"], [], set())
    assert pinned.address == "93.184.215.14" and pinned.host == "hooks.example.com"
    for answers in (["127.0.0.1"], ["93.184.215.14", "127.0.0.1"], ["::1"],
                    ["169.254.169.254"], ["fe80::1%eth0"], []):
        with pytest.raises(RefusedDestination):
            choose_address(hook, answers, [], set())


def test_the_request_goes_to_the_checked_address_without_a_second_lookup(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.answers = []

    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"looked up again: {args}")

    # A name whose DNS answer could change between the check and the connection: once
    # checked, it is never resolved again, and the request still names it in Host.
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    hook = Destination(f"http://hooks.example.com:{receiver.port}/hook?x=1", "http",
                       "hooks.example.com", receiver.port, "127.0.0.1")
    status = asyncio.run(post(hook, {"x-test": "1"}, b"{}", 10))
    assert status == 200 and len(receiver.calls) == 1
    headers, body, _at = receiver.calls[0]
    assert headers["host"] == f"hooks.example.com:{receiver.port}" and body == b"{}"


def test_tls_names_the_url_host_while_connecting_to_the_checked_address(tmp_path: Path) -> None:
    import ssl

    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,return-value]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        with contextlib.suppress(OSError):
            context.wrap_socket(connection, server_side=True)
        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    hook = Destination(f"https://hooks.example.com:{port}/hook", "https", "hooks.example.com",
                       port, "127.0.0.1")
    with pytest.raises(Exception, match="(?i)certificate|ssl"):
        asyncio.run(post(hook, {}, b"{}", 10))  # a self-signed certificate is not trusted
    thread.join(10)
    listener.close()
    assert names == ["hooks.example.com"]


def _self_signed(folder: Path) -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


# signing ---------------------------------------------------------------------------------


def test_signature_covers_tenant_timestamp_and_body() -> None:
    body, now = b'{"a":1}', time.time()
    stamp = str(int(now))
    headers = {"x-hyac-signature": sign("k1", "team", stamp, body),
               "x-hyac-timestamp": stamp, "x-hyac-tenant": "team"}
    assert verify("k1", headers, body, tenant="team", now=now)
    assert not verify("k2", headers, body, now=now)  # another tenant's key
    assert not verify("k1", headers, body + b" ", now=now)
    assert not verify("k1", {**headers, "x-hyac-tenant": "other"}, body, now=now)
    assert not verify("k1", headers, body, tenant="other", now=now)
    assert not verify("k1", headers, body, now=now + 3600)  # replayed an hour later


def test_each_tenant_has_its_own_key_stored_encrypted(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    tenancy = TenancyStore(engine)
    tenancy.create_schema()
    tenancy.create_tenant("a")
    tenancy.create_tenant("b")
    keys = CallbackKeys(engine, tmp_path)
    first = keys.key("a")
    assert first == keys.key("a") == CallbackKeys(engine, tmp_path).key("a")
    second = keys.key("b")
    assert second != first
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("select value from tenant_callback_keys").scalars().all()
    assert stored and not any(first in value for value in stored)
    rotated = keys.rotate("b")
    assert rotated != second and keys.key("b") == rotated
    # A tenant removed and made again under the same name never gets its namesake's key.
    with engine.begin() as conn:
        born = conn.execute(select(tenants.c.created_at).where(tenants.c.name == "a")).scalar_one()
        conn.execute(delete(tenants).where(tenants.c.name == "a"))
    eventually(lambda: time.time() > born, interval=0.001)  # its namesake is born later
    tenancy.create_tenant("a")
    assert keys.key("a") != first


# the real agent ---------------------------------------------------------------------------

LITERALS = [
    "http://127.0.0.1:{v4}/hook", "http://127.1:{v4}/hook", "http://2130706433:{v4}/hook",
    "http://0x7f.1:{v4}/hook", "http://0177.0.0.1:{v4}/hook", "https://127.0.0.1:{v4}/hook",
    "http://[::ffff:127.0.0.1]:{v4}/hook", "http://[::1]:{v6}/hook", "http://0.0.0.0:{v4}/hook",
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]:{v6}/hook",
    "http://10.0.0.1/hook", "http://192.168.1.1/hook",
]


def test_literal_addresses_are_refused_when_set(
    strict_agent: RunningAgent, receiver: Receiver, receiver6: Receiver
) -> None:
    receiver.prove_reachable()
    receiver6.prove_reachable()
    strict_agent.deploy("report", REPORT)
    for template in LITERALS:
        url = template.format(v4=receiver.port, v6=receiver6.port)
        with strict_agent.client() as client:
            answer = client.post("/v1/functions/report/invoke",
                                 params={"mode": "async", "callback_url": url}, json={})
        assert answer.status_code == 400, (url, answer.text)
        assert answer.json()["error"]["code"] == "callback_refused", answer.text
        assert "HYAC_CALLBACK_ALLOW_CIDRS" in answer.json()["error"]["message"]
    # The same for a function's own callback_url, at deploy.
    entry = "functions/hooked.py"
    with strict_agent.client() as client:
        answer = client.put("/v1/functions/hooked", json={
            "entry": entry, "files_b64": {entry: "ZGVmIG1haW4oYyk6IHBhc3MK"},
            "config": {"callback_url": f"http://127.1:{receiver.port}/hook"}})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "callback_refused"
    assert receiver.calls == [] and receiver6.calls == []
    # The agent serves on, callbacks included, where they may go.
    assert strict_agent.invoke("report").json()["ok"] is True
    task_id = submit(strict_agent, "report", callback_url="https://hooks.example.invalid/done")
    assert wait_for(strict_agent, task_id, "succeeded")["callback_url"].startswith("https://")


def _resolvable(name: str) -> bool:
    try:
        return bool(socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM))
    except OSError:
        return False


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.skipif(
        not _resolvable(name), reason=f"{name} does not resolve here (no /etc/hosts entry)"))
    for name in ("localhost", "ip6-localhost")
])
def test_a_name_that_resolves_to_loopback_is_refused_when_sent(
    strict_agent: RunningAgent, receiver: Receiver, receiver6: Receiver, name: str
) -> None:
    family = {info[0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    listening = receiver6 if family == {socket.AF_INET6} else receiver
    listening.prove_reachable()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    strict_agent.deploy("report", REPORT)
    # A port that answers and one that does not read the same: refused, once, not retried.
    seen = []
    for port in (listening.port, closed_port):
        task_id = submit(strict_agent, "report", callback_url=f"http://{name}:{port}/hook")
        seen.append(wait_for(strict_agent, task_id, "succeeded",
                             check=lambda t: t["callback_status"] not in (None, "pending")))
    assert [(t["callback_status"], t["callback_attempts"]) for t in seen] == [("failed", 1)] * 2
    assert listening.calls == []
    with strict_agent.client() as client:
        lines = client.get("/v1/logs", params={"function": "report"}).text
    assert "resolves to a loopback address" in lines


def test_setting_a_callback_needs_a_developer(
    strict_agent: RunningAgent, receiver: Receiver
) -> None:
    viewer = _token(strict_agent, "team", "watcher", "viewer")
    developer = _token(strict_agent, "team", "builder", "developer")
    strict_agent.deploy("report", REPORT, tenant="team")
    with _as(strict_agent, viewer, "team") as client:
        refused = client.post("/v1/functions/report/invoke",
                              params={"mode": "async", "callback_url": "https://example.com/h"},
                              json={})
        plain = client.post("/v1/functions/report/invoke", params={"mode": "async"}, json={})
        key = client.get("/v1/tasks/callback-key")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["required"] == "developer"
    assert plain.status_code == 202  # invoking stays open to viewers
    assert key.status_code == 403
    with _as(strict_agent, developer, "team") as client:
        allowed = client.post("/v1/functions/report/invoke",
                              params={"mode": "async", "callback_url": "https://example.com/h"},
                              json={})
        own_key = client.get("/v1/tasks/callback-key")
    assert allowed.status_code == 202, allowed.text
    assert own_key.status_code == 200 and own_key.json()["tenant"] == "team"
    assert own_key.json()["key"] == _key(strict_agent, "team") != _key(strict_agent)


def test_callback_is_signed_for_its_tenant_and_retried_until_delivered(
    open_agent: RunningAgent, receiver: Receiver
) -> None:
    open_agent.deploy("report", REPORT)
    task_id = submit(open_agent, "report", callback_url=receiver.url)
    delivered = wait_for(open_agent, task_id, "succeeded",
                         check=lambda t: t["callback_status"] == "delivered")
    assert delivered["callback_attempts"] == 2
    assert len(receiver.calls) == 2  # the first answer was a 500, so it came again

    key, other = _key(open_agent), _key(open_agent, "elsewhere")
    assert key != other
    for attempt, (headers, body, at) in enumerate(receiver.calls, start=1):
        assert headers["x-hyac-tenant"] == "default"
        assert abs(int(headers["x-hyac-timestamp"]) - at) <= 2
        assert headers["x-hyac-signature"].startswith("v1=")
        assert verify(key, headers, body, tenant="default")
        assert not verify(other, headers, body)  # another tenant's key does not fit
        assert headers["x-hyac-task-id"] == task_id
        assert headers["x-hyac-event"] == "task.succeeded"
        assert headers["x-hyac-delivery-attempt"] == str(attempt)
        assert headers["host"] == f"127.0.0.1:{receiver.port}"
        payload = json.loads(body)
        assert payload["event"] == "task.succeeded"
        assert payload["task"]["id"] == task_id and payload["task"]["status"] == "succeeded"
        assert payload["task"]["result"]["body_b64"]


def test_function_callback_url_reports_dead_tasks_too(
    open_agent: RunningAgent, receiver: Receiver
) -> None:
    receiver.answers = [503, 503]
    open_agent.deploy("doomed", "def main(context):\n    raise KeyError('gone')\n",
                      callback_url=receiver.url)
    task_id = submit(open_agent, "doomed")
    dead = wait_for(open_agent, task_id, "dead",
                    check=lambda t: t["callback_status"] == "delivered")
    assert dead["callback_attempts"] == 3
    first, second, third = (at for _h, _b, at in receiver.calls)
    assert third - second >= (second - first) * 0.5  # backoff grows (with jitter)
    payload = json.loads(receiver.calls[-1][1])
    assert payload["event"] == "task.dead" and payload["task"]["error"]["type"] == "KeyError"


def test_a_redirect_is_not_followed(open_agent: RunningAgent, receiver: Receiver) -> None:
    receiver.prove_reachable()
    redirector = Receiver(location=receiver.url)
    try:
        open_agent.deploy("report", REPORT)
        task_id = submit(open_agent, "report", callback_url=redirector.url)
        done = wait_for(open_agent, task_id, "succeeded",
                        check=lambda t: t["callback_status"] == "failed")
        assert done["callback_attempts"] == 3  # HYAC_CALLBACK_RETRIES=2: all answered 302
        assert len(redirector.calls) == 3
        assert receiver.calls == []
    finally:
        redirector.close()


def test_cli_prints_and_rotates_the_tenants_key(open_agent: RunningAgent) -> None:
    developer = _token(open_agent, "team", "builder", "developer")

    def cli(token: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HYAC_URL": open_agent.url, "HYAC_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "hyac_cli", "tasks", "callback-key", "--tenant", "team",
             *args], capture_output=True, text=True, timeout=60, env=env)

    before = _key(open_agent, "team")
    shown = cli(developer)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == before
    refused = cli(developer, "--rotate")  # rotating is an admin's
    assert refused.returncode != 0 and "admin" in refused.stderr
    assert "Traceback" not in refused.stderr
    rotated = cli(open_agent.token, "--rotate", "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["key"] == _key(open_agent, "team") != before
