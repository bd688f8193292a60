"""Console sign-in: one-time login codes and browser sessions.

A session acts as the token it was made from, and only as that token: it keeps the
token's sha256 (never the token) and resolves it again on every request, so a revoked or
expired token, or a changed agent token, ends its sessions at once, and a session's
principal is always exactly the one the API would see for the token.

- A login code lives 60 s and is redeemed once (the first redeemer removes it).
- A session ends after 12 h without a request, after 7 days in any case, when the user
  signs out, or when the owner (or the session's own user) revokes it.
- The browser holds the session secret in an HttpOnly cookie; the server keeps its hash.
  State-changing calls also need the session's CSRF token in a header, which only a
  same-origin page can read.

Sessions live in this agent process: a restart signs everyone out, and with several agents
behind a balancer a session is known only to the agent that made it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from hyac_common.errors import Conflict, Unauthorized

CODE_TTL = 60.0
IDLE_TTL = 12 * 3600.0
MAX_AGE = 7 * 24 * 3600.0
COOKIE = "hyac_console"
CSRF_HEADER = "x-hyac-csrf"
#: what a new code or session is refused beyond: a flood of codes must not eat memory
MAX_PENDING_CODES = 1000
MAX_SESSIONS = 10_000
#: one user's share of those, so that no account can use them up for everyone: codes
#: past it are refused; a session past it ends that user's least recently used one
MAX_CODES_PER_USER = 5
MAX_SESSIONS_PER_USER = 20


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Identity:
    """Whom a session acts as: the sha256 of the token it was made from."""

    token_hash: str
    owner_token: bool  # the agent's own token (compared with the current one each time)
    name: str  # for listings only; the principal is resolved afresh every request
    token_id: str | None = None


@dataclass
class Session:
    id: str
    secret_hash: str
    csrf: str
    identity: Identity
    client: str | None
    created: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)

    def expired(self, now: float) -> bool:
        return now - self.last_seen > IDLE_TTL or now - self.created > MAX_AGE

    def public(self) -> dict[str, object]:
        return {"id": self.id, "user": self.identity.name, "token_id": self.identity.token_id,
                "client": self.client, "created": self.created, "last_seen": self.last_seen}


class ConsoleSessions:
    """Codes and sessions of one agent process (all calls come from its event loop)."""

    def __init__(self) -> None:
        self._codes: dict[str, tuple[Identity, float]] = {}
        self._sessions: dict[str, Session] = {}  # by secret hash

    def issue_code(self, identity: Identity) -> str:
        now = time.time()
        self._codes = {h: v for h, v in self._codes.items() if v[1] > now}
        if sum(1 for who, _ in self._codes.values() if who.name == identity.name) >= \
                MAX_CODES_PER_USER:
            raise Conflict(f"{identity.name} has {MAX_CODES_PER_USER} console sign-in codes "
                           "waiting already; use one, or wait a minute")
        if len(self._codes) >= MAX_PENDING_CODES:
            raise Conflict("too many console sign-in codes are waiting; try again in a minute")
        code = secrets.token_urlsafe(24)
        self._codes[digest(code)] = (identity, now + CODE_TTL)
        return code

    def redeem_code(self, code: str) -> Identity:
        """The identity a code was issued for; the code is gone afterwards, used or not."""
        entry = self._codes.pop(digest(code), None)
        if entry is None or entry[1] <= time.time():
            raise Unauthorized("this console sign-in link is invalid, used or expired; "
                               "run `hyac console` again")
        return entry[0]

    def open(self, identity: Identity, client: str | None) -> tuple[str, Session]:
        """A new session: (the cookie's secret, the session)."""
        self._sweep()
        theirs = [s for s in self._sessions.values() if s.identity.name == identity.name]
        if len(theirs) >= MAX_SESSIONS_PER_USER:
            oldest = min(theirs, key=lambda s: s.last_seen)
            del self._sessions[oldest.secret_hash]
        if len(self._sessions) >= MAX_SESSIONS:
            raise Conflict("too many console sessions are open; sign out elsewhere first")
        secret = secrets.token_urlsafe(32)
        session = Session("ses_" + secrets.token_hex(8), digest(secret),
                          secrets.token_urlsafe(24), identity, client)
        self._sessions[session.secret_hash] = session
        return secret, session

    def find(self, secret: str, touch: bool = True) -> Session | None:
        """The live session behind a cookie value, its idle clock restarted unless
        ``touch`` is false (a stream asking again is no sign of someone at the page)."""
        key = digest(secret)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = time.time()
        if session.expired(now):
            del self._sessions[key]
            return None
        if touch:
            session.last_seen = now
        return session

    def close(self, session_id: str) -> Session | None:
        for key, session in list(self._sessions.items()):
            if session.id == session_id:
                del self._sessions[key]
                return session
        return None

    def sessions(self) -> list[Session]:
        self._sweep()
        return sorted(self._sessions.values(), key=lambda s: s.created)

    def _sweep(self) -> None:
        now = time.time()
        self._sessions = {k: s for k, s in self._sessions.items() if not s.expired(now)}


def csrf_matches(session: Session, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(header.encode(), session.csrf.encode())
