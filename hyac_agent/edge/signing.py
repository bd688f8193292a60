"""Signed requests: an HMAC-SHA256 over the time, the method, the path and the body.

A caller sends ``X-Hyac-Timestamp: <unix seconds>`` and
``X-Hyac-Signature: v1=<hex>``, the hex of HMAC-SHA256(secret, message) where the
message is ``"{timestamp}\\n{METHOD}\\n{path}[?{query}]\\n"`` followed by the body's bytes.
A timestamp further than the replay window from the agent's clock is refused, and so
is a signature already used within it.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "x-hyac-timestamp"
SIGNATURE_HEADER = "x-hyac-signature"
DEFAULT_REPLAY_WINDOW = 300.0


def signed_message(timestamp: str, method: str, target: str, body: bytes) -> bytes:
    return f"{timestamp}\n{method.upper()}\n{target}\n".encode() + body


def sign(secret: str, timestamp: str, method: str, target: str, body: bytes) -> str:
    """The ``X-Hyac-Signature`` value for a request (what a caller computes)."""
    digest = hmac.new(secret.encode(), signed_message(timestamp, method, target, body),
                      hashlib.sha256).hexdigest()
    return f"v1={digest}"


def check(secret: str, timestamp: str | None, signature: str | None, method: str,
          target: str, body: bytes, now: float, window: float) -> str | None:
    """None if the signature is good and fresh, else why not."""
    if not timestamp or not signature:
        return (f"this function takes signed requests only ({TIMESTAMP_HEADER} and "
                f"{SIGNATURE_HEADER} headers)")
    try:
        when = float(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not a number of seconds"
    if when != when or abs(now - when) > window:  # NaN, or outside the window
        return f"{TIMESTAMP_HEADER} is more than {window:g} s from the agent's clock"
    expected = sign(secret, timestamp, method, target, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return "the signature does not match the request"
    return None
