"""hyac_agent/mail.py without a server: reading HYAC_SMTP_URL and checking messages.
Sending through a real SMTP server: tests/integration/test_mail.py."""

from __future__ import annotations

import base64

import pytest

from hyac_agent.mail import MAX_MESSAGE_BYTES, MailSettings, build_message
from hyac_common.errors import InvalidInput


def settings(url: str = "smtp://mail.example.com", sender: str = "noreply@example.com") -> MailSettings:
    parsed = MailSettings.parse(url, sender, 20.0)
    assert parsed is not None
    return parsed


def test_smtp_urls() -> None:
    assert MailSettings.parse("", "x@example.com", 20.0) is None
    plain = settings("smtp://u%40example.com:p%3Aw%2Fd%25@Mail.Example.com", "Hyac <no@example.com>")
    assert (plain.host, plain.port, plain.implicit_tls, plain.starttls) == ("mail.example.com", 587, False, "auto")
    assert (plain.username, plain.password) == ("u@example.com", "p:w/d%")
    assert (plain.sender, plain.sender_name) == ("no@example.com", "Hyac")
    assert "p:w/d%" not in repr(plain)
    tls = settings("smtps://mail.example.com?cafile=/etc/ca.pem")
    assert (tls.port, tls.implicit_tls, tls.cafile) == (465, True, "/etc/ca.pem")
    assert settings("smtp://h.example.com:25?starttls=no").starttls == "no"
    assert settings("smtp://h.example.com?starttls=yes").starttls == "yes"
    # Without HYAC_MAIL_FROM, a user name that is an address is the sender.
    assert MailSettings.parse("smtp://me%40example.com:pw@h.example.com", "", 5).sender == "me@example.com"  # type: ignore[union-attr]


@pytest.mark.parametrize(("url", "sender", "error"), [
    ("http://h.example.com", "a@example.com", "must start with smtp:// or smtps://"),
    ("smtp://h.example.com:99999", "a@example.com", "invalid port"),
    ("smtp://", "a@example.com", "names no host"),
    ("smtp://h.example.com?tls=1", "a@example.com", "unknown parameter 'tls'"),
    ("smtp://h.example.com?starttls=maybe", "a@example.com", "starttls is auto, yes or no"),
    ("smtp://user:pw@h.example.com", "", "HYAC_MAIL_FROM must name the sender"),
    ("smtp://h.example.com", "not an address", "HYAC_MAIL_FROM: mail sender"),
    ("smtp://h.example.com", "a@example.com\r\nBcc: b@example.com", "HYAC_MAIL_FROM: mail sender"),
])
def test_bad_settings_are_named(url: str, sender: str, error: str) -> None:
    with pytest.raises(InvalidInput, match=error.replace("?", r"\?")):
        MailSettings.parse(url, sender, 20.0)


def test_the_message_built() -> None:
    message, recipients = build_message(settings(sender="Hyac <no@example.com>"), "acme", {
        "to": "Ada <ada@example.com>", "bcc": ["ADA@example.com", "b@example.com"],
        "subject": "Grüße", "html": "<b>hi</b>",
        "attachments": [{"filename": "a.csv", "content_type": None,
                         "data_b64": base64.b64encode(b"1,2").decode()}],
    })
    assert recipients == ["ada@example.com", "b@example.com"]  # once each, bcc included
    assert str(message["From"]) == "Hyac <no@example.com>" and message["Bcc"] is None
    assert message["X-Hyac-Tenant"] == "acme" and message["Message-ID"].endswith("@example.com>")
    [attachment] = message.iter_attachments()
    assert attachment.get_content_type() == "text/csv"  # type: ignore[attr-defined]
    assert "Subject: =?utf-8?" in message.as_string()  # encoded, never raw


BASE = {"to": "a@example.com", "subject": "s", "text": "t"}


@pytest.mark.parametrize(("change", "error"), [
    ({"subject": "a\rb"}, "line breaks"),
    ({"subject": "a\u2028b"}, "line breaks"),
    ({"subject": "x" * 501}, "longer than 500"),
    ({"to": "a@example.com\nBcc: b@example.com"}, "line breaks"),
    ({"to": "a@example.com b@example.com"}, "not one address"),
    ({"to": "a@example.com, b@example.com"}, "not one address"),
    ({"to": "a@-example.com"}, "not a valid email address"),
    ({"to": ["a@example.com", 7]}, "must be a string"),
    ({"to": {"a@example.com": 1}}, "address or a list"),
    ({"to": None}, "at least one to"),
    ({"cc": [f"c{i}@example.com" for i in range(50)]}, "more than 50 recipients"),
    ({"reply_to": [f"r{i}@example.com" for i in range(11)]}, "at most 10"),
    ({"from_name": "x\ny"}, "line breaks"),
    ({"from": "ceo@bank.example.com"}, "unknown argument 'from'"),
    ({"headers": {"X-A": "1"}}, "unknown argument 'headers'"),
    ({"text": None}, "text or an html body"),
    ({"text": 5}, "text must be a string"),
    ({"text": "x" * (MAX_MESSAGE_BYTES + 1)}, "larger than"),
    ({"attachments": [{"filename": "a", "data_b64": "!!"}]}, "not valid base64"),
    ({"attachments": [{"filename": "", "data_b64": ""}]}, "plain, non-empty name"),
    ({"attachments": [{"filename": "a", "content_type": "text", "data_b64": ""}]}, "not type/subtype"),
    ({"attachments": [{"filename": "a", "content_type": "text/plain; x=\"\r\n\"", "data_b64": ""}]},
     "not type/subtype"),
    ({"attachments": [{"filename": "a"}]}, "needs data_b64"),
    ({"attachments": [{"filename": "a", "data_b64": ""}] * 21}, "at most 20 attachments"),
])
def test_every_violation_is_invalid_input(change: dict, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        build_message(settings(), "t", {**BASE, **change})
