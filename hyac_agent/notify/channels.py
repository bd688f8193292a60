"""Notification channels: a tenant's own, and the platform's (tenant ``*``, the owner's).

A channel's settings (the webhook URL, which is itself the credential for Slack, Discord
and Teams; a generic webhook's signing key; mail recipients) are stored encrypted with
the agent's secrets key and never returned: a listing shows the type, the URL's host and
whether the channel is shared. A generic webhook's signing key is shown once, when the
channel is made.

A URL that names a literal loopback, private, link-local or metadata address is refused
when the channel is added (the task callbacks' rules, ``destinations.check_submitted``);
names are resolved and checked each time a notification is sent.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from hyac_agent.notify.formats import CHANNEL_TYPES, WEBHOOK_TYPES
from hyac_agent.notify.tables import PLATFORM, alert_rules, alert_state, channels, metadata
from hyac_agent.tasks.destinations import IPNetwork, check_submitted
from hyac_common.errors import Conflict, InvalidInput, NotFound
from hyac_common.names import validate_name

#: how a tenant's function names a shared platform channel
PLATFORM_PREFIX = "platform/"
MAX_RECIPIENTS = 20
#: channels of one tenant (or of the platform)
MAX_CHANNELS = 100
_RECIPIENT = re.compile(r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,63}$")


@dataclass
class Channel:
    tenant: str
    name: str
    type: str
    summary: str
    shared: bool
    created_at: float
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    def public(self) -> dict[str, Any]:
        """What the API shows: never the URL nor the key."""
        return {"name": self.name, "type": self.type, "target": self.summary,
                "shared": self.shared, "platform": self.tenant == PLATFORM,
                "created_at": self.created_at}


def check_settings(name: str, kind: str, url: str | None, to: Sequence[str] | None,
                   allowed: Sequence[IPNetwork]) -> tuple[dict[str, Any], str]:
    """The settings to store for a new channel and the summary to show, or InvalidInput
    (RefusedDestination for a URL to a refused address)."""
    if kind not in CHANNEL_TYPES:
        raise InvalidInput(f"unknown channel type {kind!r}; known: {', '.join(CHANNEL_TYPES)}")
    if kind == "email":
        if url:
            raise InvalidInput("an email channel takes recipients (to), not a URL")
        recipients = [str(item).strip() for item in (to or []) if str(item).strip()]
        if not recipients:
            raise InvalidInput("an email channel needs at least one recipient (--to)")
        if len(recipients) > MAX_RECIPIENTS:
            raise InvalidInput(f"an email channel has at most {MAX_RECIPIENTS} recipients")
        for address in recipients:
            if not _RECIPIENT.match(address):
                raise InvalidInput(f"{address[:80]!r} is not an email address")
        return {"to": recipients}, f"{len(recipients)} recipient(s)"
    if to:
        raise InvalidInput(f"a {kind} channel takes a webhook URL (url), not recipients")
    if not url:
        raise InvalidInput(f"a {kind} channel needs its webhook URL (--url)")
    destination = check_submitted(url, allowed, what=f"channel {name}'s URL")
    settings: dict[str, Any] = {"url": url}
    if kind == "webhook":
        settings["signing_key"] = "hyac_whk_" + secrets.token_hex(32)
    return settings, f"{destination.scheme}://{destination.host}"


class ChannelStore:
    """Channels in the main store's database (blocking calls)."""

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        from cryptography.fernet import Fernet

        from hyac_agent.tenancy.secrets import load_or_create_key

        self.engine = engine
        self._box = Fernet(load_or_create_key(data_dir))
        metadata.create_all(engine)

    def add(self, tenant: str, name: str, kind: str, settings: dict[str, Any], summary: str,
            shared: bool = False) -> Channel:
        validate_name(name, "channel")
        if shared and tenant != PLATFORM:
            raise InvalidInput("only platform channels can be shared with tenants")
        now = time.time()
        sealed = self._box.encrypt(json.dumps(settings).encode()).decode()
        try:
            with self.engine.begin() as conn:
                held = conn.execute(select(func.count()).select_from(channels).where(
                    channels.c.tenant == tenant)).scalar_one()
                if held >= MAX_CHANNELS:
                    raise InvalidInput(f"at most {MAX_CHANNELS} notification channels "
                                       "(remove one first)")
                conn.execute(insert(channels).values(
                    tenant=tenant, name=name, type=kind, secret=sealed, summary=summary[:255],
                    shared=shared, created_at=now))
        except IntegrityError:
            raise Conflict(f"a notification channel named {name!r} exists already "
                           "(remove it first to replace it)") from None
        return Channel(tenant, name, kind, summary[:255], shared, now, settings)

    def get(self, tenant: str, name: str) -> Channel:
        """``tenant``'s channel ``name`` with its settings; NotFound if it has none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(channels).where(
                channels.c.tenant == tenant, channels.c.name == name)).first()
        if row is None:
            raise NotFound(f"no notification channel {name!r}"
                           + (" on the platform" if tenant == PLATFORM else ""))
        return self._channel(row, with_settings=True)

    def reachable(self, tenant: str, name: object) -> Channel:
        """The channel a function of ``tenant`` means by ``name``: its own, or a shared
        platform channel as ``platform/NAME``. The same NotFound for any other name, so
        other tenants' channel names cannot be probed."""
        if not isinstance(name, str) or not name:
            raise InvalidInput("notify needs a channel name (str)")
        if name.startswith(PLATFORM_PREFIX):
            channel = self.get(PLATFORM, name[len(PLATFORM_PREFIX):])
            if not channel.shared:
                raise NotFound(f"no notification channel {name!r}")
            return channel
        validate_name(name, "channel")
        return self.get(tenant, name)

    def of(self, tenant: str) -> list[Channel]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(channels).where(channels.c.tenant == tenant)
                                .order_by(channels.c.name)).all()
        return [self._channel(row) for row in rows]

    def shared(self) -> list[Channel]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(channels).where(
                channels.c.tenant == PLATFORM, channels.c.shared.is_(True))
                .order_by(channels.c.name)).all()
        return [self._channel(row) for row in rows]

    def remove(self, tenant: str, name: str) -> None:
        """Remove a channel; a platform channel's alert rules go with it."""
        with self.engine.begin() as conn:
            gone = conn.execute(delete(channels).where(
                channels.c.tenant == tenant, channels.c.name == name)).rowcount
            if gone and tenant == PLATFORM:
                rules = list(conn.execute(select(alert_rules.c.id).where(
                    alert_rules.c.channel == name)).scalars())
                for rule in rules:
                    conn.execute(delete(alert_state).where(alert_state.c.key.like(f"r{rule}:%")))
                conn.execute(delete(alert_rules).where(alert_rules.c.channel == name))
        if not gone:
            raise NotFound(f"no notification channel {name!r}")

    def _channel(self, row: Any, with_settings: bool = False) -> Channel:
        settings = json.loads(self._box.decrypt(row.secret.encode())) if with_settings else {}
        return Channel(row.tenant, row.name, row.type, row.summary, bool(row.shared),
                       row.created_at, settings)


def is_webhook(kind: str) -> bool:
    return kind in WEBHOOK_TYPES
