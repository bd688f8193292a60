"""Completion webhooks: a signed POST to the task's ``callback_url`` when it ends.

The body is JSON; ``X-Hyac-Signature: sha256=HEX`` is the HMAC-SHA256 of the exact body
bytes under the agent's callback secret, so the receiver can check that the call came
from this agent and that nothing was changed on the way.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_FILE = "callback.key"
SIGNATURE_HEADER = "X-Hyac-Signature"


def load_or_create_secret(data_dir: Path) -> str:
    """The agent's callback secret, made on first use and readable by its owner only."""
    path = data_dir / SECRET_FILE
    try:
        secret = path.read_text().strip()
        if secret:
            return secret
    except FileNotFoundError:
        pass
    secret = secrets.token_hex(32)
    temporary = data_dir / f".{SECRET_FILE}.{secrets.token_hex(4)}.tmp"
    temporary.write_text(secret)
    temporary.chmod(0o600)
    try:
        # A hard link never replaces: if another process sharing the data dir made the
        # secret first, its secret stays and is the one used.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text().strip()

def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (a header value) signs ``body``; constant-time."""
    return hmac.compare_digest(sign(secret, body), signature.strip())
