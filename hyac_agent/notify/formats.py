"""What each kind of channel is sent: one ``Message`` rendered as Slack, Discord or
Microsoft Teams webhook JSON, Hyac's own webhook JSON, or a mail.

Text a tenant wrote cannot ping a whole Slack channel or Discord server: Slack's control
characters are escaped (``<!channel>`` arrives as text) and Discord is told to parse no
mentions at all."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from hyac_common.errors import InvalidInput

CHANNEL_TYPES = ("slack", "discord", "teams", "webhook", "email")
WEBHOOK_TYPES = ("slack", "discord", "teams", "webhook")
MAX_TEXT = 4000
MAX_TITLE = 200
MAX_FIELDS = 20
MAX_FIELD_NAME = 100
MAX_FIELD_VALUE = 1000
#: Discord refuses a message whose content is longer than this
DISCORD_CONTENT = 2000
_COLOURS = {"info": "#439FE0", "firing": "#D33833", "resolved": "#2EB67D"}


@dataclass
class Message:
    """One notification: its text, optional title and fields; ``state`` is "info" for
    a plain message, "firing" or "resolved" for an alert."""

    text: str
    title: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    state: str = "info"
    #: alerts: which kind (task_dead, error_rate, …) and the condition's key
    alert: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Message:
        return cls(**json.loads(text))


def _plain(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"notification {what} must be a string")
    if len(value) > limit:
        raise InvalidInput(f"notification {what} is longer than {limit} characters")
    if any(c not in "\t\n" and unicodedata.category(c) == "Cc" for c in value):
        raise InvalidInput(f"notification {what} must not contain control characters")
    return value


def check_message(text: object, fields: object, title: object = "") -> Message:
    """The message a function (or a test) asks to send, or InvalidInput."""
    body = _plain(text, "text", MAX_TEXT)
    if not body.strip():
        raise InvalidInput("a notification needs some text")
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise InvalidInput("notification fields must be an object of names and values")
    if len(fields) > MAX_FIELDS:
        raise InvalidInput(f"a notification has at most {MAX_FIELDS} fields")
    checked: dict[str, str] = {}
    for name, value in fields.items():
        name = _plain(name, "field name", MAX_FIELD_NAME)
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise InvalidInput(f"notification field {name!r} must be a string, number or boolean")
        # Booleans read the same whichever language sent them.
        shown = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
        checked[name] = _plain(shown, f"field {name!r}", MAX_FIELD_VALUE)
    return Message(text=body, title=_plain(title or "", "title", MAX_TITLE), fields=checked)


def _slack_escape(text: str) -> str:
    # Slack's own rule: these three are its markup (<!channel>, <@U123>, <url|label>).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(message: Message) -> dict[str, Any]:
    text = _slack_escape(message.text)
    if message.title:
        text = f"*{_slack_escape(message.title)}*\n{text}"
    payload: dict[str, Any] = {"text": text}
    if message.fields:
        payload["attachments"] = [{
            "color": _COLOURS.get(message.state, _COLOURS["info"]),
            "fields": [{"title": _slack_escape(k), "value": _slack_escape(v), "short": len(v) < 40}
                       for k, v in message.fields.items()],
        }]
    return payload


def discord(message: Message) -> dict[str, Any]:
    content = message.text
    if len(content) > DISCORD_CONTENT:
        content = content[:DISCORD_CONTENT - 1] + "…"
    payload: dict[str, Any] = {"content": content, "allowed_mentions": {"parse": []}}
    if message.title or message.fields:
        embed: dict[str, Any] = {
            "color": int(_COLOURS.get(message.state, _COLOURS["info"])[1:], 16),
            "fields": [{"name": k, "value": v or "-", "inline": len(v) < 40}
                       for k, v in message.fields.items()],
        }
        if message.title:
            embed["title"] = message.title[:256]
        payload["embeds"] = [embed]
    return payload


def teams(message: Message) -> dict[str, Any]:
    """An Adaptive Card in a message: what Teams' incoming webhooks and its Workflows
    ("when a Teams webhook request is received") both take."""
    body: list[dict[str, Any]] = []
    if message.title:
        body.append({"type": "TextBlock", "text": message.title, "weight": "Bolder",
                     "size": "Medium", "wrap": True,
                     "color": {"firing": "Attention", "resolved": "Good"}.get(message.state,
                                                                              "Default")})
    body.append({"type": "TextBlock", "text": message.text, "wrap": True})
    if message.fields:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v}
                                                  for k, v in message.fields.items()]})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4", "body": body}
    return {"type": "message", "summary": (message.title or message.text)[:80],
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                             "contentUrl": None, "content": card}]}


def webhook(message: Message, delivery_id: str, channel: str, sender: str,
            created_at: float) -> dict[str, Any]:
    """Hyac's own webhook body (signed like task callbacks: see ``send``)."""
    payload: dict[str, Any] = {
        "id": delivery_id, "channel": channel, "tenant": sender, "created_at": created_at,
        "kind": "alert" if message.alert else "message", "text": message.text,
        "title": message.title, "fields": message.fields,
    }
    if message.alert:
        payload["alert"] = {**message.alert, "state": message.state}
    return payload


def render(kind: str, message: Message, delivery_id: str, channel: str, sender: str,
           created_at: float) -> bytes:
    """The JSON body a webhook channel of ``kind`` is sent."""
    if kind == "slack":
        payload = slack(message)
    elif kind == "discord":
        payload = discord(message)
    elif kind == "teams":
        payload = teams(message)
    else:
        payload = webhook(message, delivery_id, channel, sender, created_at)
    return json.dumps(payload, ensure_ascii=False).encode()


def mail(message: Message) -> tuple[str, str]:
    """Subject and plain-text body of the mail an email channel is sent."""
    first = message.title or message.text.strip().splitlines()[0]
    subject = " ".join(first.split())[:150]
    if message.state in ("firing", "resolved"):
        subject = f"[{message.state}] {subject}"
    body = message.text
    if message.fields:
        body += "\n\n" + "\n".join(f"{k}: {v}" for k, v in message.fields.items())
    return subject, body
