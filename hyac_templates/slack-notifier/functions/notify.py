"""Posts a message to Slack through the tenant's notification channel.

    hyac notify channel add slack --type slack --url -    # paste the webhook URL
    hyac invoke notify --data '{"text": "Deploy finished", "level": "info"}'
    hyac invoke notify --data '{"text": "Disk full", "level": "error", "dry_run": true}'

The webhook URL lives in the channel (stored encrypted, never shown again), not in the
function: the agent delivers with retries and backoff, and `hyac notify deliveries`
shows how each message went. ``dry_run`` answers what would be sent without sending.
"""

from hyac_context import HostCallError

ICONS = {"info": ":information_source:", "warning": ":warning:", "error": ":rotating_light:"}
MAX_FIELDS = 10


def message_of(body) -> tuple[dict, str | None]:
    """(the notification, or None) and the reason it is refused."""
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
        return {}, 'send {"text": "..."}'
    level = body.get("level", "info")
    if level not in ICONS:
        return {}, f"level is one of {', '.join(ICONS)}"
    fields = body.get("fields") or {}
    if not isinstance(fields, dict) or len(fields) > MAX_FIELDS:
        return {}, f"fields is an object of at most {MAX_FIELDS} entries"
    shown = {str(key)[:50]: str(value)[:200] for key, value in fields.items()}
    return {"text": f"{ICONS[level]} {body['text'][:3000]}", "fields": shown}, None


def main(context: FunctionContext):
    try:
        body = context.request.json()
    except ValueError:
        body = None
    message, problem = message_of(body)
    if problem:
        return Response(status=400, body={"error": problem})
    channel = context.env.get("NOTIFY_CHANNEL") or "slack"
    if body.get("dry_run"):
        return {"sent": False, "channel": channel, **message}
    try:
        delivery = context.notify(channel, message["text"], **message["fields"])
    except HostCallError as exc:
        if exc.code == "not_found":
            return Response(status=500, body={
                "error": f"no notification channel {channel!r}: hyac notify channel add "
                         f"{channel} --type slack --url -"})
        raise
    return {"sent": True, "channel": channel, "delivery": delivery}
