"""The mail integration against a real SMTP server process (aiosmtpd, STARTTLS and AUTH
required): set through the API with the password apart and encrypted, tried before it is
saved, a test message sent and received, functions' mail following a change at once
(no restart), owner only, every change audited."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.integration.test_mail import PASSWORD, SEND, USER, SmtpServer, smtp, tls_dir
from tests.integrations.conftest import configure, setting
from tests.tenancy.conftest import Platform, body

pytest.importorskip("aiosmtpd", reason="aiosmtpd is not installed (pip install -e '.[test]')")
#: the SMTP server process (STARTTLS, then AUTH, required) and its certificate, per module
__all__ = ["smtp", "tls_dir"]


def mail_settings(smtp: SmtpServer, tls_dir: Path, password: str = PASSWORD) -> dict[str, object]:
    """Settings for the server, the password apart from the URL."""
    from urllib.parse import quote

    return {"url": f"smtp://{quote(USER, safe='')}@127.0.0.1:{smtp.port}"
                   f"?starttls=yes&cafile={tls_dir / 'cert.pem'}",
            "password": password, "mail_from": "Hyac Ops <ops@example.com>", "timeout": 10}


def test_mail_set_test_send_and_unset(api_platform: Platform, smtp: SmtpServer,
                                      tls_dir: Path) -> None:
    platform = api_platform
    platform.tenant("mailer")
    assert platform.deploy("send", SEND, "mailer").status_code in (200, 201)

    def send() -> dict:
        import json

        return json.loads(body(platform.invoke("send", "mailer", body_b64=_b64(
            {"to": "someone@example.org", "subject": "hi", "text": "hello"}))))

    assert send()["error"] == "mail_not_configured"
    with platform.owner() as client:
        untested = client.post("/v1/system/integrations/mail/test", json={"to": "a@example.org"})
    assert untested.status_code == 400 and "not configured" in untested.json()["error"]["message"]

    # The password inside the URL would be stored in clear: refused, nothing saved.
    inline = configure(platform, "mail", {**mail_settings(smtp, tls_dir),
                                          "url": f"smtp://u:pw@127.0.0.1:{smtp.port}"})
    assert inline.status_code == 400 and "password" in inline.json()["error"]["message"]
    # A server that is not there: the settings are tried first, so nothing is saved.
    from tests.integrations.conftest import free_port

    settings = mail_settings(smtp, tls_dir, password="nope")
    settings["url"] = str(settings["url"]).replace(f":{smtp.port}", f":{free_port()}")
    wrong = configure(platform, "mail", settings)
    assert wrong.status_code == 422, wrong.text
    error = wrong.json()["error"]
    assert error["code"] == "integration_failed" and "cannot reach the SMTP server" in error["message"]
    assert "\n" not in error["message"] and "nope" not in wrong.text
    with platform.owner() as client:
        view = client.get("/v1/system/integrations/mail").json()
    assert view["configured"] is False and setting(view, "url")["source"] == "default"
    assert send()["error"] == "mail_not_configured"

    saved = configure(platform, "mail", mail_settings(smtp, tls_dir))
    assert saved.status_code == 200, saved.text
    view = saved.json()
    assert view["configured"] is True and view["updated_by"] == "owner"
    assert setting(view, "password") == {**setting(view, "password"), "value": "set", "source": "store"}
    assert PASSWORD not in saved.text
    # At rest the password is ciphertext (Fernet, the tenants' secrets key).
    with sqlite3.connect(platform.agent.data_dir / "hyac.db") as db:
        rows = db.execute("SELECT plain, secret FROM integrations WHERE kind = 'mail'").fetchall()
    assert rows and PASSWORD not in rows[0][0] and PASSWORD not in rows[0][1] and rows[0][1]

    with platform.owner() as client:
        tested = client.post("/v1/system/integrations/mail/test", json={"to": "check@example.org"})
    assert tested.status_code == 200, tested.text
    assert "check@example.org" in tested.json()["message"]
    envelope, message = smtp.received()[-1]
    assert envelope["rcpt_tos"] == ["check@example.org"] and envelope["mail_from"] == "ops@example.com"
    assert envelope["authenticated"] and envelope["tls"]
    assert message["Subject"] == "Hyac test message"

    # The running agent's functions send through the new settings: no restart.
    before = len(smtp.received())
    assert "message_id" in send()
    assert len(smtp.received()) == before + 1
    assert smtp.received()[-1][0]["rcpt_tos"] == ["someone@example.org"]

    with platform.owner() as client:
        removed = client.delete("/v1/system/integrations/mail")
        assert removed.status_code == 200 and removed.json()["configured"] is False
        audit = client.get("/v1/audit", params={"all": True}).json()
    assert send()["error"] == "mail_not_configured"
    done = [(e["action"], e["target"], e["result"]) for e in audit if e["action"].startswith("integration.")]
    assert ("integration.set", "mail", 422) in done and ("integration.set", "mail", 200) in done
    assert ("integration.test", "mail", 200) in done and ("integration.unset", "mail", 200) in done
    assert all(e["tenant"] is None for e in audit if e["action"].startswith("integration."))


def test_a_test_message_to_a_bad_address_is_refused_before_sending(
        api_platform: Platform, smtp: SmtpServer, tls_dir: Path) -> None:
    assert configure(api_platform, "mail", mail_settings(smtp, tls_dir)).status_code == 200
    before = len(smtp.received())
    with api_platform.owner() as client:
        for to in ("not an address", "a@example.org\r\nBcc: b@example.org"):
            answer = client.post("/v1/system/integrations/mail/test", json={"to": to})
            assert answer.status_code == 400, answer.text
        unknown = client.post("/v1/system/integrations/mail/test", json={"cc": "a@example.org"})
        assert unknown.status_code == 400
        client.delete("/v1/system/integrations/mail")
    assert len(smtp.received()) == before


def _b64(value: object) -> str:
    import base64
    import json

    return base64.b64encode(json.dumps(value).encode()).decode()
