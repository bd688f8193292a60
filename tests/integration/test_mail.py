"""context.mail against a real SMTP server process (aiosmtpd): what a function sends is
what the server receives, over STARTTLS with AUTH and over implicit TLS; bad input and
header injection send nothing; the mails_per_day quota refuses the next message, per
tenant and across a restart; a missing or unreachable server is a clear error."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import RunningAgent, requires_bwrap, start_agent
from tests.runtime_families.conftest import requires_runtime
from tests.tenancy.conftest import Platform, agent_env, body

pytest.importorskip("aiosmtpd", reason="aiosmtpd is not installed (pip install -e '.[test]')")
pytestmark = requires_bwrap

SERVER = Path(__file__).with_name("smtp_server.py")
USER, PASSWORD = "hyac@example.com", "p@ss:w/rd%20!"
SENDER = "Hyac Mail <noreply@example.com>"

SEND = '''
import base64
from hyac_context import Attachment, HostCallError

def main(context):
    args = context.request.json()
    files = [Attachment(a["filename"], base64.b64decode(a["data"]), a.get("content_type"))
             for a in args.pop("attachments", [])]
    try:
        message_id = context.mail.send(attachments=files, **args)
    except HostCallError as exc:
        return {"error": exc.code, "message": exc.message, "details": exc.details}
    return {"message_id": message_id}
'''


@dataclass
class SmtpServer:
    port: int
    inbox: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def received(self) -> list[tuple[dict, EmailMessage]]:
        found = []
        for envelope in sorted(self.inbox.glob("*.json")):
            raw = envelope.with_suffix(".eml").read_bytes().replace(b"\r\n", b"\n")  # as sent: CRLF
            found.append((json.loads(envelope.read_text()),
                          message_from_bytes(raw, policy=policy.default)))
        return found  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def start_smtp(directory: Path, *options: str) -> SmtpServer:
    port = free_port()
    inbox = directory / f"inbox-{port}"
    process = subprocess.Popen([sys.executable, str(SERVER), str(inbox), str(port), *options],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    said = []
    while not said or said[-1].strip() != b"ready":  # aiosmtpd may warn first
        said.append(process.stdout.readline())
        if not said[-1]:
            process.kill()
            raise RuntimeError(f"the SMTP server did not start: {b''.join(said)!r}")
    return SmtpServer(port, inbox, process)


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("smtp-tls")
    self_signed(directory)
    return directory


@pytest.fixture(scope="module")
def smtp(tls_dir: Path) -> Iterator[SmtpServer]:
    """STARTTLS required, then AUTH required: what a mail provider's submission port asks."""
    server = start_smtp(tls_dir, "--starttls", str(tls_dir / "cert.pem"), str(tls_dir / "key.pem"),
                        "--auth", f"{USER}:{PASSWORD}")
    yield server
    server.stop()


def smtp_url(server: SmtpServer, tls_dir: Path, scheme: str = "smtp", query: str = "starttls=yes") -> str:
    return (f"{scheme}://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@127.0.0.1:{server.port}"
            f"?{query}&cafile={tls_dir / 'cert.pem'}")


def mail_agent(data_dir: Path, url: str, **env: str) -> RunningAgent:
    return start_agent(data_dir, "--sandbox", "bwrap",
                       env={**agent_env(), "HYAC_SMTP_URL": url, "HYAC_MAIL_FROM": SENDER, **env})


@pytest.fixture(scope="module")
def platform(smtp: SmtpServer, tls_dir: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Platform]:
    agent = mail_agent(tmp_path_factory.mktemp("mail-agent") / "data", smtp_url(smtp, tls_dir))
    yield Platform(agent)
    agent.kill(signal.SIGTERM)


def send(platform: Platform, tenant: str, **args: object) -> dict:
    payload = base64.b64encode(json.dumps(args).encode()).decode()
    answer = platform.invoke("send", tenant, body_b64=payload, headers={"content-type": "application/json"})
    return json.loads(body(answer))  # type: ignore[no-any-return]


def test_a_function_sends_text_html_and_an_attachment(platform: Platform, smtp: SmtpServer) -> None:
    platform.tenant("mailer")
    assert platform.deploy("send", SEND, "mailer").status_code == 201
    blob = bytes(range(256)) * 40
    before = len(smtp.received())
    sent = send(platform, "mailer", to=["Ada Lovelace <ada@example.com>", "grace@example.org"],
                cc="bob@example.net", bcc=["hidden@example.com"], reply_to="help@example.com",
                subject="Report für Januar", text="Plain body.\n", html="<p>HTML body</p>",
                from_name="Billing", attachments=[
                    {"filename": "data.bin", "data": base64.b64encode(blob).decode(),
                     "content_type": "application/octet-stream"},
                    {"filename": "notes.txt", "data": base64.b64encode(b"a,b\n").decode()}])
    assert "error" not in sent, sent
    received = smtp.received()
    assert len(received) == before + 1
    envelope, message = received[-1]
    assert envelope["authenticated"] and envelope["tls"]
    assert envelope["mail_from"] == "noreply@example.com"
    assert envelope["rcpt_tos"] == ["ada@example.com", "grace@example.org", "bob@example.net",
                                    "hidden@example.com"]
    assert str(message["From"]) == "Billing <noreply@example.com>"
    assert str(message["To"]) == "Ada Lovelace <ada@example.com>, grace@example.org"
    assert str(message["Cc"]) == "bob@example.net" and message["Bcc"] is None
    assert str(message["Reply-To"]) == "help@example.com"
    assert str(message["Subject"]) == "Report für Januar"
    assert message["X-Hyac-Tenant"] == "mailer"
    assert message["Message-ID"] == sent["message_id"] and sent["message_id"].endswith("@example.com>")
    assert message.get_body(("plain",)).get_content() == "Plain body.\n"  # type: ignore[union-attr]
    assert message.get_body(("html",)).get_content().strip() == "<p>HTML body</p>"  # type: ignore[union-attr]
    files = {part.get_filename(): part for part in message.iter_attachments()}
    assert files["data.bin"].get_content() == blob
    assert files["data.bin"].get_content_type() == "application/octet-stream"
    assert files["notes.txt"].get_content_type() == "text/plain"  # guessed from the name
    assert files["notes.txt"].get_content() == "a,b\n"

    with platform.owner("mailer") as owner:
        lines = [r["message"] for r in owner.get("/v1/logs", params={"function": "send"}).json()]
    mail_lines = [line for line in lines if line.startswith("mail sent")]
    assert mail_lines == [f"mail sent: {sent['message_id']} to 4 recipient(s)"]
    assert not any("Plain body" in line or "ada@example.com" in line for line in lines)


NODE_SEND = """
export async function main(context) {
  const id = await context.mail.send({
    to: ["ada@example.com"], subject: "from node", text: "plain", html: "<p>html</p>",
    replyTo: "help@example.com", fromName: "Node",
    attachments: [{ filename: "n.bin", content: new Uint8Array([0, 1, 255]) }],
  });
  let refused = null;
  try {
    await context.mail.send({ to: "a@example.com", subject: "a\\r\\nBcc: b@example.com", text: "x" });
  } catch (error) {
    refused = error.code;
  }
  return { id, refused };
}
"""


@pytest.mark.parametrize("runtime", [pytest.param(name, marks=requires_runtime(name))
                                     for name in ("node20", "deno")])
def test_a_javascript_function_sends_mail(platform: Platform, smtp: SmtpServer, runtime: str) -> None:
    platform.tenant("mailer")
    entry = f"functions/send{runtime}.mjs"
    with platform.owner("mailer") as owner:
        deployed = owner.put(f"/v1/functions/send{runtime}", json={
            "entry": entry, "files_b64": {entry: base64.b64encode(NODE_SEND.encode()).decode()},
            "config": {"runtime": runtime}})
    assert deployed.status_code == 201, deployed.text
    before = len(smtp.received())
    answer = json.loads(body(platform.invoke(f"send{runtime}", "mailer")))
    assert answer["refused"] == "invalid_input"
    received = smtp.received()
    assert len(received) == before + 1
    envelope, message = received[-1]
    assert envelope["rcpt_tos"] == ["ada@example.com"] and message["Message-ID"] == answer["id"]
    assert str(message["From"]) == "Node <noreply@example.com>" and message["X-Hyac-Tenant"] == "mailer"
    assert str(message["Reply-To"]) == "help@example.com"
    [attachment] = message.iter_attachments()
    assert attachment.get_filename() == "n.bin" and attachment.get_content() == bytes([0, 1, 255])


INJECTIONS = '''
from hyac_context import HostCallError

CASES = [
    {"to": "a@example.com", "subject": "hi\\r\\nBcc: victim@example.com", "text": "x"},
    {"to": "a@example.com", "subject": "hi\\nX-Evil: 1", "text": "x"},
    {"to": "a@example.com\\r\\nBcc: victim@example.com", "subject": "s", "text": "x"},
    {"to": "Eve\\r\\nBcc: victim@example.com <a@example.com>", "subject": "s", "text": "x"},
    {"to": "a@example.com", "subject": "s", "text": "x", "from_name": "CEO\\r\\nReply-To: x@evil.com"},
    {"to": "a@example.com", "subject": "s", "text": "x", "reply_to": "x@evil.com\\nBcc: y@evil.com"},
    {"to": "not-an-address", "subject": "s", "text": "x"},
    {"to": "a@example.com, b@example.com", "subject": "s", "text": "x"},
    {"to": "a@localhost", "subject": "s", "text": "x"},
    {"to": [], "subject": "s", "text": "x"},
    {"to": "a@example.com", "subject": "s"},
    {"to": ["u%d@example.com" % i for i in range(51)], "subject": "s", "text": "x"},
    {"to": "a@example.com", "cc": ["u%d@example.com" % i for i in range(30)],
     "bcc": ["v%d@example.com" % i for i in range(30)], "subject": "s", "text": "x"},
    {"to": "a@example.com", "subject": "s", "text": "x", "attachments": [("bad\\r\\nname.txt", b"x")]},
    {"to": "a@example.com", "subject": "s", "text": "x", "attachments": [("../etc/passwd", b"x")]},
    {"to": "a@example.com", "subject": "s", "text": "x",
     "attachments": [Attachment("a.txt", b"x", "text/plain\\r\\nX-Evil: 1")]},
    {"to": "a@example.com", "subject": "s", "text": "x",
     "attachments": [("big.bin", b"x" * (10 * 1024 * 1024 + 1))]},
]

def main(context):
    codes = []
    for case in CASES:
        try:
            context.mail.send(**case)
            codes.append("sent")
        except HostCallError as exc:
            codes.append(exc.code)
    # The raw host call cannot name its own sender either.
    try:
        context.mail._send({"to": "a@example.com", "subject": "s", "text": "x",
                            "from": "ceo@bank.example.com"}).result()
        codes.append("sent")
    except HostCallError as exc:
        codes.append(exc.code)
    return codes
'''


def test_header_injection_and_bad_addresses_send_nothing(platform: Platform, smtp: SmtpServer) -> None:
    platform.tenant("mailer")
    source = "from hyac_context import Attachment\n" + INJECTIONS
    assert platform.deploy("inject", source, "mailer").status_code == 201
    before = len(smtp.received())
    codes = json.loads(body(platform.invoke("inject", "mailer")))
    assert codes == ["invalid_input"] * 18
    assert len(smtp.received()) == before


def test_mail_over_implicit_tls(tls_dir: Path, tmp_path: Path) -> None:
    server = start_smtp(tmp_path, "--smtps", str(tls_dir / "cert.pem"), str(tls_dir / "key.pem"),
                        "--auth", f"{USER}:{PASSWORD}")
    agent = mail_agent(tmp_path / "data", smtp_url(server, tls_dir, "smtps", "starttls=no"))
    try:
        platform = Platform(agent)
        assert platform.deploy("send", SEND, "default").status_code == 201
        sent = send(platform, "default", to="ada@example.com", subject="over TLS", text="t")
        assert "error" not in sent, sent
        [(envelope, message)] = server.received()
        assert envelope["tls"] and envelope["authenticated"] and message["Message-ID"] == sent["message_id"]
    finally:
        agent.kill(signal.SIGTERM)
        server.stop()


def test_mails_per_day_per_tenant_and_across_a_restart(tmp_path: Path) -> None:
    server = start_smtp(tmp_path)  # plain SMTP: no TLS offered, none asked for
    url = f"smtp://127.0.0.1:{server.port}"
    agent = mail_agent(tmp_path / "data", url)
    try:
        platform = Platform(agent)
        for tenant in ("quota-a", "quota-b"):
            platform.tenant(tenant)
            assert platform.deploy("send", SEND, tenant).status_code == 201
        with platform.owner("quota-a") as owner:
            assert owner.put("/v1/quotas", json={"values": {"mails_per_day": 2}}).status_code == 200
        for _ in range(2):
            assert "message_id" in send(platform, "quota-a", to="a@example.com", subject="s", text="t")
        refused = send(platform, "quota-a", to="a@example.com", subject="s", text="t")
        assert refused["error"] == "quota_exceeded" and "mails_per_day" in refused["message"]
        assert refused["details"] == {"quota": "mails_per_day", "limit": 2, "use": 2}
        assert "message_id" in send(platform, "quota-b", to="b@example.com", subject="s", text="t")
        assert len(server.received()) == 3
        with platform.owner("quota-a") as owner:
            shown = owner.get("/v1/quotas").json()["quotas"]["mails_per_day"]
        assert shown["limit"] == 2 and shown["use"] == 2 and shown["source"] == "tenant"
        with platform.owner("quota-b") as owner:
            assert owner.get("/v1/quotas").json()["quotas"]["mails_per_day"]["use"] == 1
    finally:
        agent.kill(signal.SIGTERM)
    again = mail_agent(tmp_path / "data", url)
    try:
        platform = Platform(again)
        refused = send(platform, "quota-a", to="a@example.com", subject="s", text="t")
        assert refused["error"] == "quota_exceeded" and refused["details"]["use"] == 2
        assert "message_id" in send(platform, "quota-b", to="b@example.com", subject="s", text="t")
        with platform.owner("quota-b") as owner:
            assert owner.get("/v1/quotas").json()["quotas"]["mails_per_day"]["use"] == 2
        assert len(server.received()) == 4
    finally:
        again.kill(signal.SIGTERM)
        server.stop()


def test_unconfigured_agent_says_so(tmp_path: Path) -> None:
    agent = start_agent(tmp_path / "data", "--sandbox", "bwrap", env=agent_env())
    try:
        platform = Platform(agent)
        assert platform.deploy("send", SEND, "default").status_code == 201
        answer = send(platform, "default", to="a@example.com", subject="s", text="t")
        assert answer["error"] == "mail_not_configured"
        assert answer["message"] == ("mail is not configured on this agent: set HYAC_SMTP_URL "
                                     "or `hyac system integrations set mail url=…`")
    finally:
        agent.kill(signal.SIGTERM)


def test_a_malformed_smtp_url_stops_the_agent_at_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="HYAC_SMTP_URL must start with smtp:// or smtps://"):
        mail_agent(tmp_path / "data", "http://mail.example.com")


def test_an_smtp_server_that_is_down_or_silent_is_a_clear_error(tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # takes connections and never says a word
    down = free_port()  # nothing listens there
    agents = [mail_agent(tmp_path / "down", f"smtp://127.0.0.1:{down}"),
              mail_agent(tmp_path / "silent", f"smtp://127.0.0.1:{silent.getsockname()[1]}",
                         HYAC_SMTP_TIMEOUT="2")]
    try:
        answers = []
        for agent in agents:
            platform = Platform(agent)
            assert platform.deploy("send", SEND, "default").status_code == 201
            answers.append(send(platform, "default", to="a@example.com", subject="s", text="t"))
        assert answers[0]["error"] == "mail_failed"
        assert answers[0]["message"] == f"cannot reach the SMTP server 127.0.0.1:{down}: connection refused"
        assert answers[1]["error"] == "mail_failed"
        assert "no answer within 2 s (HYAC_SMTP_TIMEOUT)" in answers[1]["message"]
        with Platform(agents[0]).owner("default") as owner:  # a failed send is not counted
            assert owner.get("/v1/quotas").json()["quotas"]["mails_per_day"]["use"] == 0
    finally:
        for agent in agents:
            agent.kill(signal.SIGTERM)
        silent.close()
