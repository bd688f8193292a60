"""Receives webhooks signed with HMAC-SHA256 (as GitHub, Stripe-style senders do).

The sender puts ``sha256=<hex of HMAC-SHA256(secret, raw body)>`` in the header named by
SIGNATURE_HEADER. A missing or wrong signature is 401 and the body is not read further.
The comparison is constant-time. Accepted events are kept in the key-value store.
"""

import hashlib
import hmac
import time


def expected_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def main(context: FunctionContext):
    if context.request.method != "POST":
        return Response(status=405, headers={"allow": "POST"}, body={"error": "POST a webhook"})
    try:
        secret = context.secrets["WEBHOOK_SECRET"]
    except KeyError:
        context.logger.error("WEBHOOK_SECRET is not set: hyac secret set WEBHOOK_SECRET")
        return Response(status=500, body={"error": "the receiver is not configured"})
    header = context.env.get("SIGNATURE_HEADER", "x-hub-signature-256").lower()
    given = context.request.headers.get(header, "")
    if not hmac.compare_digest(given, expected_signature(secret, context.request.body)):
        context.logger.warning("refused a webhook with a missing or wrong signature")
        return Response(status=401, body={"error": "invalid signature"})
    try:
        event = context.request.json()
    except ValueError:
        return Response(status=400, body={"error": "the body is not JSON"})
    kind = str(event.get("type", "unknown")) if isinstance(event, dict) else "unknown"
    key = f"webhooks/{time.time():.6f}-{context.function.request_id}"
    await context.kv.aset(key, {"type": kind, "event": event})
    context.logger.info("accepted a %s webhook", kind)
    return {"accepted": True, "type": kind}
