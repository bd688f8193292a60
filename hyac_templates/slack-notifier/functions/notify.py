"""Posts a message to Slack through an incoming webhook.

    hyac invoke notify --data '{"text": "Deploy finished", "level": "info"}'
    hyac invoke notify --data '{"text": "Disk full", "level": "error", "dry_run": true}'

``dry_run`` answers the Slack payload without sending it. Only ``https://hooks.slack.com/``
URLs are used, so a misconfigured secret cannot make the function post elsewhere.
"""

import json
import urllib.error
import urllib.request

ICONS = {"info": ":information_source:", "warning": ":warning:", "error": ":rotating_light:"}


def slack_payload(text: str, level: str, fields: dict) -> dict:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"{ICONS[level]} {text}"}}]
    if fields:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{key}*\n{value}"} for key, value in list(fields.items())[:10]
        ]})
    return {"text": text, "blocks": blocks}


def main(context: FunctionContext):
    try:
        message = context.request.json()
    except ValueError:
        message = None
    if not isinstance(message, dict) or not isinstance(message.get("text"), str) or not message["text"]:
        return Response(status=400, body={"error": "send {\"text\": \"...\"}"})
    level = message.get("level", "info")
    if level not in ICONS:
        return Response(status=400, body={"error": f"level is one of {', '.join(ICONS)}"})
    fields = message.get("fields") or {}
    if not isinstance(fields, dict):
        return Response(status=400, body={"error": "fields is an object"})
    payload = slack_payload(message["text"][:3000], level, {str(k): str(v) for k, v in fields.items()})
    if message.get("dry_run"):
        return {"sent": False, "payload": payload}
    url = context.secrets.get("SLACK_WEBHOOK_URL", "")
    if not url.startswith("https://hooks.slack.com/"):
        return Response(status=500, body={"error": "set SLACK_WEBHOOK_URL to your Slack webhook URL"})
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read(1024)
    except urllib.error.URLError as exc:
        context.logger.error("Slack refused or was unreachable: %s", exc)
        return Response(status=502, body={"error": "Slack did not take the message"})
    return {"sent": True}
