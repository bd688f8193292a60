"""Signatures of inbound webhooks, as their senders make them.

- ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``.
- ``stripe``: ``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
  (several v1 while a secret rolls); a timestamp further than ``STRIPE_TOLERANCE`` from
  now is refused, so a captured request cannot be replayed later.
- ``hmac-sha256``: ``X-Hyac-Signature: sha256=<hex HMAC-SHA256 of the body>``.

Comparisons take constant time; a refusal never says which part was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from hyac_common.errors import Unauthorized

STRIPE_TOLERANCE = 300.0
HEADERS = {"github": "X-Hub-Signature-256", "stripe": "Stripe-Signature",
           "hmac-sha256": "X-Hyac-Signature"}


def _mac(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def sign(scheme: str, secret: str, body: bytes, timestamp: int) -> str:
    """The header value a sender of ``scheme`` would send (for tests and docs)."""
    if scheme == "stripe":
        return f"t={timestamp},v1={_mac(secret, f'{timestamp}.'.encode() + body)}"
    return "sha256=" + _mac(secret, body)


def verify(scheme: str, secret: str, headers: Mapping[str, str], body: bytes,
           now: float) -> None:
    """Nothing if the request is signed with ``secret`` as ``scheme`` says; Unauthorized
    otherwise."""
    header = HEADERS[scheme]
    value = headers.get(header.lower()) or ""
    refused = Unauthorized(f"missing or wrong webhook signature ({header})")
    if scheme != "stripe":
        if not hmac.compare_digest(value.encode(), sign(scheme, secret, body, 0).encode()):
            raise refused
        return
    fields: dict[str, list[str]] = {}
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        fields.setdefault(key, []).append(item)
    try:
        timestamp = int(fields.get("t", [""])[0])
    except ValueError:
        raise refused from None
    if abs(now - timestamp) > STRIPE_TOLERANCE:
        raise Unauthorized(f"webhook signature timestamp is more than {STRIPE_TOLERANCE:g}s "
                           f"from the agent's clock ({header})")
    expected = _mac(secret, f"{timestamp}.".encode() + body).encode()
    if not any(hmac.compare_digest(candidate.encode(), expected)
               for candidate in fields.get("v1", [])):
        raise refused
