"""Delivery: every notification is a row of the delivery log first, then sent.

Guarantees, before the code:
- **Durable.** A notification is stored (status ``pending``) before ``notify`` answers;
  an agent that stops mid-send leaves the row claimed until ``claimed_until``, after which
  any agent sharing the store (this one, restarted) sends it again. So a notification is
  delivered at least once; a receiver sees a retry of the same ``id`` rarely, never a loss.
- **Retried with backoff.** A failed attempt (no answer, a 408, 429 or 5xx, a mail server
  that is down) is tried again after ``backoff`` seconds, doubling up to a cap, at most
  ``retries`` more times; then the row is ``failed`` with the last error (trimmed). An
  answer that a retry cannot change (a 404 from a removed Slack hook, a refused address)
  fails it at once.
- **Never stalls the agent.** Each attempt runs on its own with a timeout for the name
  lookup, the connection and the answer; at most ``MAX_SENDING`` attempts at once, and
  at most ``PER_CHANNEL`` of them to one channel, so a receiver that never answers
  holds two slots for at most the timeout each, and the other channels keep the rest.
- **The task callbacks' SSRF rules.** The URL's name is resolved when it is sent, every
  address must pass ``destinations`` (no loopback, private, link-local, metadata
  addresses unless ``HYAC_CALLBACK_ALLOW_CIDRS`` allows them), and the request goes to
  exactly the address checked, never following a redirect (``callbacks.post``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpcore
from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import OperationalError

from hyac_agent.notify import formats
from hyac_agent.notify.channels import Channel, ChannelStore
from hyac_agent.notify.formats import Message
from hyac_agent.notify.tables import deliveries
from hyac_agent.tasks import callbacks, destinations
from hyac_agent.tasks.destinations import IPNetwork
from hyac_agent.tasks.execution import backoff
from hyac_agent.waiting import wake_or_timeout
from hyac_common.errors import HyacError, InvalidInput, MailNotConfigured, NotFound, RefusedDestination

if TYPE_CHECKING:
    from hyac_agent.mail import MailSettings

log = logging.getLogger("hyac.notify")

MAX_SENDING = 8
#: attempts to one channel at once: a channel whose receiver never answers holds these
#: and leaves the other slots to the other channels
PER_CHANNEL = 2
MAX_ERROR = 300
#: statuses a retry may turn into success
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
POLL = 1.0
#: delivered and failed notifications are kept this long in the log, then deleted
RETENTION = 7 * 86400.0
PRUNE_EVERY = 600.0


@dataclass
class NotifySettings:
    """HYAC_NOTIFY_RETRIES, HYAC_NOTIFY_BACKOFF, HYAC_NOTIFY_TIMEOUT, HYAC_ALERT_INTERVAL,
    and the callbacks' HYAC_CALLBACK_ALLOW_CIDRS (see hyac_agent/config.py)."""

    retries: int = 5
    backoff: float = 2.0
    backoff_max: float = 600.0
    timeout: float = 10.0
    alert_interval: float = 30.0
    allowed: list[IPNetwork] = field(default_factory=list)

    @property
    def hold(self) -> float:
        """How long one attempt may hold its row before another agent may take it."""
        return self.timeout * 3 + 30


class Permanent(Exception):
    """An attempt failed in a way a retry cannot change."""


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 1] + "…"


def delivery_info(row: Any) -> dict[str, Any]:
    message = Message.from_json(row.message)
    return {
        "id": row.id, "channel": row.channel, "platform": row.tenant == "*",
        "sender": row.sender, "source": row.source, "status": row.status,
        "attempts": row.attempts, "last_error": row.last_error, "text": message.text[:200],
        "state": message.state, "created_at": row.created_at, "updated_at": row.updated_at,
        "next_at": row.next_at if row.status == "pending" else None,
    }


class Deliverer:
    """The delivery log and the loop that sends what is due in it."""

    def __init__(self, engine: Engine, channels: ChannelStore, settings: NotifySettings,
                 mail_settings: Callable[[], MailSettings | None]) -> None:
        self.engine = engine
        self.channels = channels
        self.settings = settings
        #: the mail settings in force when a mail is sent (they may change at run time)
        self.mail_settings = mail_settings
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_SENDING)
        self._loop_task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        #: the deliveries this agent holds a claim on right now
        self._claimed: set[str] = set()
        #: attempts in flight per channel, (tenant, name)
        self._busy: dict[tuple[str, str], int] = {}

    # the log ----------------------------------------------------------------------------

    def record(self, channel: Channel, sender: str, source: str, message: Message) -> str:
        """Store a notification to send (blocking); its delivery id."""
        delivery_id = "ntf_" + secrets.token_hex(12)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(deliveries).values(
                id=delivery_id, tenant=channel.tenant, channel=channel.name, sender=sender,
                source=source, message=message.to_json(), status="pending", attempts=0,
                next_at=now, claimed_until=None, last_error=None, created_at=now,
                updated_at=now))
        return delivery_id

    async def enqueue(self, channel: Channel, sender: str, source: str, message: Message) -> str:
        delivery_id = await asyncio.to_thread(self.record, channel, sender, source, message)
        self.wake()
        return delivery_id

    def wake(self) -> None:
        """Look for what is due now rather than at the next poll (on the agent's loop)."""
        self._wake.set()

    def recent(self, *, sender: str | None = None, tenant: str | None = None,
             channel: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest deliveries sent by ``sender`` or to ``tenant``'s channels."""
        query = select(deliveries).order_by(deliveries.c.created_at.desc()).limit(limit)
        if sender is not None:
            query = query.where(deliveries.c.sender == sender)
        if tenant is not None:
            query = query.where(deliveries.c.tenant == tenant)
        if channel is not None:
            query = query.where(deliveries.c.channel == channel)
        with self.engine.connect() as conn:
            return [delivery_info(row) for row in conn.execute(query).all()]

    def get(self, delivery_id: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        return row

    # the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="hyac-notify")

    async def stop(self) -> None:
        """Stop sending; what was being sent is handed back at once (the next agent to
        look sends it again; were this one killed instead, after its claim runs out)."""
        tasks = [t for t in (self._loop_task, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        held, self._claimed = set(self._claimed), set()
        if held:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._release, held)

    def _release(self, held: set[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(deliveries).where(
                deliveries.c.id.in_(held), deliveries.c.status == "pending",
            ).values(claimed_until=None))

    async def _run(self) -> None:
        pruned = 0.0
        while True:
            try:
                if time.monotonic() - pruned > PRUNE_EVERY:
                    await asyncio.to_thread(self.prune, time.time() - RETENTION)
                    pruned = time.monotonic()
                full = [k for k, n in self._busy.items() if n >= PER_CHANNEL]
                for delivery_id, key in await asyncio.to_thread(self._due, time.time(), full):
                    if self._busy.get(key, 0) >= PER_CHANNEL:
                        continue
                    await self._slots.acquire()
                    self._busy[key] = self._busy.get(key, 0) + 1
                    job = asyncio.create_task(self._attempt(delivery_id, key))
                    self._sending.add(job)
                    job.add_done_callback(self._sending.discard)
            except asyncio.CancelledError:
                raise
            except Exception:  # the store may be away for a moment: try again soon
                log.exception("could not read the notifications due")
            self._wake.clear()
            await wake_or_timeout(self._wake, POLL)

    def prune(self, before: float) -> int:
        """Delete what was delivered or given up before ``before``; how many (blocking)."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(deliveries).where(
                deliveries.c.status != "pending", deliveries.c.updated_at < before)).rowcount)

    def _due(self, now: float, full: list[tuple[str, str]]
             ) -> list[tuple[str, tuple[str, str]]]:
        """What is due, oldest first, but for the channels that have all their slots."""
        skipped = [~and_(deliveries.c.tenant == tenant, deliveries.c.channel == channel)
                   for tenant, channel in full]
        with self.engine.connect() as conn:
            rows = conn.execute(select(deliveries.c.id, deliveries.c.tenant,
                                       deliveries.c.channel).where(
                deliveries.c.status == "pending", deliveries.c.next_at <= now,
                or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
                *skipped,
            ).order_by(deliveries.c.next_at).limit(MAX_SENDING * 2)).all()
        return [(row.id, (row.tenant, row.channel)) for row in rows]

    def _claim(self, delivery_id: str, now: float) -> Any:
        """The row, if this agent now holds it (no other agent sends it meanwhile)."""
        with self.engine.begin() as conn:
            taken = conn.execute(update(deliveries).where(
                deliveries.c.id == delivery_id, deliveries.c.status == "pending",
                or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
            ).values(claimed_until=now + self.settings.hold)).rowcount
            if not taken:
                return None
            return conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()

    def _finish(self, delivery_id: str, status: str, attempts: int, error: str | None,
                next_at: float | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(deliveries).where(and_(deliveries.c.id == delivery_id)).values(
                status=status, attempts=attempts, last_error=error, next_at=next_at,
                claimed_until=None, updated_at=time.time()))

    async def _attempt(self, delivery_id: str, key: tuple[str, str]) -> None:
        try:
            row = await asyncio.to_thread(self._claim, delivery_id, time.time())
            if row is None:
                return
            self._claimed.add(row.id)
            attempts = row.attempts + 1
            error: str | None = None
            retry = False
            try:
                await asyncio.wait_for(self._send(row), self.settings.timeout * 3)
            except Permanent as exc:
                error = _trim(str(exc))
            except (TimeoutError, httpcore.TimeoutException):
                error, retry = f"no answer within {self.settings.timeout:g} s", True
            except HyacError as exc:
                error, retry = _trim(exc.message), isinstance(exc, MailNotConfigured) or exc.status >= 500
            except Exception as exc:  # OSError, httpcore's errors: the network said no
                error, retry = _trim(f"{type(exc).__name__}: {exc}"), True
            if error is None:
                status, next_at = "delivered", None
            elif retry and attempts <= self.settings.retries:
                wait = backoff(attempts, self.settings.backoff, self.settings.backoff_max)
                status, next_at = "pending", time.time() + wait
            else:
                status, next_at = "failed", None
            if error is not None:
                log.info("notification %s to %s: attempt %d failed: %s", row.id, row.channel,
                         attempts, error)
            await self._record_outcome(row.id, status, attempts, error, next_at)
            self._claimed.discard(row.id)
        finally:
            self._slots.release()
            self._busy[key] -= 1
            if not self._busy[key]:
                del self._busy[key]
            self._wake.set()  # a slot is free: look for more at once

    async def _record_outcome(self, delivery_id: str, status: str, attempts: int,
                              error: str | None, next_at: float | None) -> None:
        """Write how the attempt went, trying again while the store is busy: an outcome
        lost here would have the notification sent again once its claim runs out."""
        for pause in (0.1, 0.3, 1.0, 3.0, 0.0):
            try:
                await asyncio.to_thread(self._finish, delivery_id, status, attempts, error, next_at)
                return
            except OperationalError:
                if not pause:
                    raise
                await asyncio.sleep(pause)

    async def _send(self, row: Any) -> None:
        try:
            channel = await asyncio.to_thread(self.channels.get, row.tenant, row.channel)
        except NotFound:
            raise Permanent("the channel was removed") from None
        message = Message.from_json(row.message)
        if channel.type == "email":
            await self._mail(channel, row.sender, message)
            return
        body = formats.render(channel.type, message, row.id, channel.name, row.sender,
                              row.created_at)
        headers = {"Content-Type": "application/json", "User-Agent": "hyac-notify"}
        if channel.type == "webhook":
            timestamp = str(int(time.time()))
            signer = "*" if channel.tenant == "*" else row.sender
            headers.update({
                callbacks.SIGNATURE_HEADER: callbacks.sign(
                    channel.settings["signing_key"], signer, timestamp, body),
                callbacks.TIMESTAMP_HEADER: timestamp,
                callbacks.TENANT_HEADER: signer,
                "X-Hyac-Delivery": row.id,
            })
        await self._post(channel.tenant, channel.settings["url"], headers, body)

    async def _post(self, tenant: str, url: str, headers: dict[str, str], body: bytes) -> None:
        """POST to a webhook channel of ``tenant`` ("*": the platform owner's)."""
        timeout = self.settings.timeout
        try:
            target = destinations.parse_url(url, "the channel's URL")
            destination = await destinations.resolve(target, self.settings.allowed,
                                                     tenant=tenant, timeout=timeout)
        except (RefusedDestination, InvalidInput) as exc:
            raise Permanent(exc.message) from None
        except OSError as exc:
            raise OSError(f"cannot resolve the channel's host: {exc.strerror or exc}") from None
        status = await callbacks.post(destination, headers, body, timeout)
        if 200 <= status < 300:
            return
        if status in RETRIED_STATUSES:
            raise OSError(f"the receiver answered HTTP {status}")
        raise Permanent(f"the receiver answered HTTP {status} (not retried)")

    async def _mail(self, channel: Channel, sender: str, message: Message) -> None:
        from hyac_agent import mail

        settings = await asyncio.to_thread(self.mail_settings)
        if settings is None:
            raise MailNotConfigured("mail is not configured on this agent")
        subject, text = formats.mail(message)
        tenant = sender if sender != "*" else "platform"
        built, recipients = await asyncio.to_thread(
            mail.build_message, settings, tenant,
            {"to": channel.settings["to"], "subject": subject, "text": text})
        refused = await asyncio.to_thread(mail.deliver, settings, built, recipients)
        if refused and len(refused) == len(recipients):
            raise Permanent("the mail server refused every recipient")
