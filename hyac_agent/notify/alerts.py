"""Platform alerts, routed to platform channels by the owner's rules (kind -> channel).

Conditions (they fire once when they begin and send "resolved" once when they end):
- ``error_rate``: a function's failed invocations over ``threshold`` (a fraction) of at
  least ``min_calls`` in the last ``window`` seconds;
- ``quota``: a tenant at 80 % and at 100 % of a counted quota;
- ``sandbox_unavailable``: the agent's sandbox backend cannot run on this host any more.

Events (each sent once; nothing to resolve):
- ``task_dead``: a task gave up (status ``dead``);
- ``vulnerabilities``: a rescan found new advisories for a deployed version;
- ``agent_restarted``: an agent process started.

Once, across agents: a condition's state and each event kind's cursor are rows of
``notify_alert_state``, changed by guarded updates, so when several agents check at
the same moment only the one whose update took sends the alert. Conditions are judged
by one agent at a time, the holder of a lease (the row ``lease:conditions``): agents
whose views differ for a moment (a quota just changed elsewhere, each one's own
counters) would otherwise fire and resolve in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hyac_agent.notify.channels import ChannelStore
from hyac_agent.notify.delivery import Deliverer
from hyac_agent.notify.formats import Message
from hyac_agent.notify.tables import PLATFORM, alert_rules, alert_state
from hyac_common.durations import parse_duration
from hyac_common.errors import InvalidInput, NotFound

log = logging.getLogger("hyac.alerts")

CONDITIONS = ("error_rate", "quota", "sandbox_unavailable")
EVENTS = ("task_dead", "vulnerabilities", "agent_restarted")
KINDS = CONDITIONS + EVENTS
#: the quotas whose use is counted (the others are limits per sandbox or per deploy)
WATCHED_QUOTAS = ("storage", "executions_per_day", "functions", "mails_per_day",
                  "notifications_per_day")
LEVELS = (80, 100)
MAX_EVENTS = 50
LEASE = "lease:conditions"
DEFAULTS: dict[str, Any] = {"threshold": 0.5, "window": 300.0, "min_calls": 10}
#: a window of a year, a million calls: anything larger is a mistake
MAX_OPTION = 366 * 86400


@dataclass
class AlertSources:
    """What the alerts look at, beyond the store's tables."""

    #: every tenant's name
    tenants: Callable[[], list[str]]
    #: a tenant's quota report: {quota: {"limit", "use", …}}
    quota_report: Callable[[str], dict[str, Any]]
    #: None while the sandbox backend can run, else why not; and the backend's name
    sandbox_problem: Callable[[], str | None]
    sandbox_name: str


@dataclass
class Found:
    """A condition or event as it will be told."""

    key: str
    title: str
    text: str
    fields: dict[str, str]


def check_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    if kind not in KINDS:
        raise InvalidInput(f"unknown alert kind {kind!r}; known: {', '.join(KINDS)}")
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise InvalidInput(f"unknown alert option {unknown[0]!r}; known: {', '.join(DEFAULTS)}")
    if kind != "error_rate" and options:
        raise InvalidInput(f"alert kind {kind} takes no options")
    checked = dict(DEFAULTS) if kind == "error_rate" else {}
    for name, value in options.items():
        if value is None:
            continue
        try:
            number = float(parse_duration(value, name) if name == "window" and isinstance(value, str)
                           else value)
        except (TypeError, ValueError):
            raise InvalidInput(f"alert option {name} must be a number, not {value!r}") from None
        if not math.isfinite(number) or number > MAX_OPTION:
            raise InvalidInput(f"alert option {name} is out of range")
        if name == "threshold" and not 0 < number <= 1:
            raise InvalidInput("alert threshold is a fraction of invocations, above 0 and at most 1")
        if name in ("window", "min_calls") and number < 1:
            raise InvalidInput(f"alert option {name} must be at least 1")
        checked[name] = int(number) if name == "min_calls" else number
    return checked


class Alerts:
    def __init__(self, engine: Engine, channels: ChannelStore, deliverer: Deliverer,
                 sources: AlertSources, interval: float) -> None:
        self.engine = engine
        self.channels = channels
        self.deliverer = deliverer
        self.sources = sources
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        #: who this agent is, as the condition lease names it
        self._me = f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"

    # rules (blocking) -------------------------------------------------------------------

    def add_rule(self, kind: str, channel: str, options: dict[str, Any]) -> dict[str, Any]:
        checked = check_options(kind, options)
        self.channels.get(PLATFORM, channel)  # NotFound names it
        with self.engine.begin() as conn:
            made = conn.execute(insert(alert_rules).values(
                kind=kind, channel=channel, options=json.dumps(checked), created_at=time.time()))
        assert made.inserted_primary_key is not None
        rule_id = int(made.inserted_primary_key[0])
        return {"id": rule_id, "kind": kind, "channel": channel, "options": checked}

    def rules(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(alert_rules).order_by(alert_rules.c.id)).all()
        return [{"id": r.id, "kind": r.kind, "channel": r.channel,
                 "options": json.loads(r.options)} for r in rows]

    def remove_rule(self, rule_id: int) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount:
                raise NotFound(f"no alert rule {rule_id}")
            conn.execute(delete(alert_state).where(alert_state.c.key.like(f"r{rule_id}:%")))

    def active(self) -> list[dict[str, Any]]:
        """The conditions firing now."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(alert_state).where(
                alert_state.c.active.is_(True), alert_state.c.key.like("r%"),
            ).order_by(alert_state.c.since)).all()
        return [{"key": r.key, "title": r.title, "since": r.since} for r in rows]

    # the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hyac-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._started)
        while True:
            try:
                await asyncio.to_thread(self.check)
            except Exception:
                log.exception("could not check the alert conditions")
            self.deliverer.wake()
            await asyncio.sleep(self.interval)

    def _started(self) -> None:
        from hyac_common import __version__

        found = Found(f"agent:{os.getpid()}:{time.time()}", "Hyac agent started",
                      f"An agent process started (pid {os.getpid()}, Hyac {__version__}).",
                      {"pid": str(os.getpid()), "version": __version__})
        for rule in self.rules():
            if rule["kind"] == "agent_restarted":
                self._send(rule, found, "firing")

    def check(self) -> None:
        """Look at every condition and event once; send what changed (blocking)."""
        rules = self.rules()
        for kind in ("task_dead", "vulnerabilities"):
            events = self._events(kind)
            for rule in rules:
                if rule["kind"] == kind:
                    for found in events:
                        self._send(rule, found, "firing")
        if any(rule["kind"] in CONDITIONS for rule in rules) and self._lead(time.time()):
            for rule in rules:
                if rule["kind"] in CONDITIONS:
                    self._conditions(rule)

    def _lead(self, now: float) -> bool:
        """Whether this agent holds (or now takes) the lease to judge conditions: the row
        ``lease:conditions``, whose title names the holder and ``since`` its expiry."""
        key, until = LEASE, now + max(3 * self.interval, 10.0)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(select(alert_state).where(alert_state.c.key == key)).first()
                if row is None:
                    conn.execute(insert(alert_state).values(
                        key=key, active=True, title=self._me, since=until, updated_at=now))
                    return True
                if row.title != self._me and row.since >= now:
                    return False  # another agent leads, and is alive
                return bool(conn.execute(update(alert_state).where(
                    alert_state.c.key == key, alert_state.c.title == row.title,
                    alert_state.c.since == row.since,
                ).values(title=self._me, since=until, updated_at=now)).rowcount)
        except IntegrityError:
            return False

    # conditions -------------------------------------------------------------------------

    def _conditions(self, rule: dict[str, Any]) -> None:
        prefix = f"r{rule['id']}:"
        current = {prefix + found.key: found for found in self._evaluate(rule)}
        now = time.time()
        with self.engine.connect() as conn:
            active = {r.key: r.title for r in conn.execute(select(alert_state).where(
                alert_state.c.key.like(prefix + "%"), alert_state.c.active.is_(True))).all()}
        for key, found in current.items():
            if key not in active and self._flip(key, True, found.title, now):
                self._send(rule, found, "firing")
        for key, title in active.items():
            if key not in current and self._flip(key, False, title, now):
                self._send(rule, Found(key[len(prefix):], title, f"Resolved: {title}", {}),
                           "resolved")

    def _flip(self, key: str, active: bool, title: str, now: float) -> bool:
        """Whether this agent turned ``key`` to ``active`` (another may have first)."""
        try:
            with self.engine.begin() as conn:
                changed = conn.execute(update(alert_state).where(
                    alert_state.c.key == key, alert_state.c.active.is_(not active),
                ).values(active=active, title=title[:255], since=now, updated_at=now)).rowcount
                if not changed and active:
                    exists = conn.execute(select(alert_state.c.key).where(
                        alert_state.c.key == key)).first()
                    if exists is None:
                        conn.execute(insert(alert_state).values(
                            key=key, active=True, title=title[:255], since=now, updated_at=now))
                        changed = 1
        except IntegrityError:
            return False
        return bool(changed)

    def _evaluate(self, rule: dict[str, Any]) -> list[Found]:
        kind = rule["kind"]
        if kind == "error_rate":
            return self._error_rates(rule["options"])
        if kind == "quota":
            return self._quotas()
        problem = self.sources.sandbox_problem()
        if problem is None:
            return []
        name = self.sources.sandbox_name
        return [Found(f"sandbox:{name}", f"Sandbox backend {name} unavailable", problem,
                      {"backend": name})]

    def _error_rates(self, options: dict[str, Any]) -> list[Found]:
        from hyac_agent.metrics.tables import invocations as calls

        since = time.time() - float(options["window"])
        failed = func.sum(case((calls.c.outcome != "ok", 1), else_=0))
        with self.engine.connect() as conn:
            rows = conn.execute(select(calls.c.tenant, calls.c.function,
                                       func.count().label("total"), failed.label("failed"))
                                .where(calls.c.ts >= since)
                                .group_by(calls.c.tenant, calls.c.function)).all()
        found = []
        for row in rows:
            total, errors = int(row.total), int(row.failed or 0)
            if total >= options["min_calls"] and errors / total >= options["threshold"]:
                name = f"{row.tenant}/{row.function}"
                found.append(Found(
                    f"error_rate:{name}", f"High error rate: {name}",
                    f"{errors} of {total} invocations of {name} failed in the last "
                    f"{options['window']:g} s (threshold {options['threshold']:.0%}).",
                    {"tenant": row.tenant, "function": row.function,
                     "failed": str(errors), "invocations": str(total)}))
        return found

    def _quotas(self) -> list[Found]:
        found = []
        for tenant in self.sources.tenants():
            report = self.sources.quota_report(tenant)
            for name in WATCHED_QUOTAS:
                entry = report.get(name) or {}
                limit, use = entry.get("limit"), entry.get("use")
                if not limit or use is None:
                    continue
                for level in LEVELS:
                    if use >= limit * level / 100:
                        found.append(Found(
                            f"quota:{tenant}:{name}:{level}",
                            f"Tenant {tenant} at {level}% of quota {name}",
                            f"Tenant {tenant} uses {use:g} of its {name} quota of {limit:g}.",
                            {"tenant": tenant, "quota": name, "use": f"{use:g}",
                             "limit": f"{limit:g}"}))
        return found

    # events -----------------------------------------------------------------------------

    def _events(self, kind: str) -> list[Found]:
        """What happened since this kind's cursor, if this agent moved the cursor past it."""
        key = f"cursor:{kind}"
        with self.engine.connect() as conn:
            row = conn.execute(select(alert_state).where(alert_state.c.key == key)).first()
        if row is None:  # the first look: only what happens from now on counts
            start = self._latest(kind)
            with contextlib.suppress(IntegrityError), self.engine.begin() as conn:
                conn.execute(insert(alert_state).values(key=key, active=False, title="",
                                                        since=start, updated_at=time.time()))
            return []
        events, mark = self._since(kind, row.since)
        if not events:
            return []
        with self.engine.begin() as conn:
            moved = conn.execute(update(alert_state).where(
                and_(alert_state.c.key == key, alert_state.c.since == row.since),
            ).values(since=mark, updated_at=time.time())).rowcount
        return events if moved else []

    def _latest(self, kind: str) -> float:
        if kind == "task_dead":
            from hyac_agent.store.task_tables import tasks

            with self.engine.connect() as conn:
                value = conn.execute(select(func.max(tasks.c.finished_at))
                                     .where(tasks.c.status == "dead")).scalar()
            return float(value or time.time())
        from hyac_agent.tenancy.tables import audit

        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(audit.c.id))).scalar()
        return float(value or 0)

    def _since(self, kind: str, cursor: float) -> tuple[list[Found], float]:
        if kind == "task_dead":
            from hyac_agent.store.task_tables import tasks

            with self.engine.connect() as conn:
                rows = conn.execute(select(tasks.c.id, tasks.c.tenant, tasks.c.function,
                                           tasks.c.attempt, tasks.c.finished_at, tasks.c.error)
                                    .where(tasks.c.status == "dead", tasks.c.finished_at > cursor)
                                    .order_by(tasks.c.finished_at).limit(MAX_EVENTS)).all()
            found = [Found(f"task:{r.id}", f"Task dead: {r.tenant}/{r.function}",
                           f"Task {r.id} of {r.tenant}/{r.function} gave up after "
                           f"{r.attempt} attempt(s): {_error_text(r.error)}",
                           {"tenant": r.tenant, "function": r.function, "task": r.id})
                     for r in rows]
            return found, (float(rows[-1].finished_at) if rows else cursor)
        from hyac_agent.tenancy.tables import audit

        with self.engine.connect() as conn:
            rows = conn.execute(select(audit).where(
                audit.c.id > cursor, audit.c.action == "vulnerabilities_found",
            ).order_by(audit.c.id).limit(MAX_EVENTS)).all()
        found = [Found(f"vulns:{r.id}", f"New vulnerabilities: {r.tenant or 'templates'}",
                       f"A rescan found new advisories for "
                       f"{r.tenant or 'a published template'}: {r.target}",
                       {"tenant": r.tenant or "", "version": (r.target or "").split(":")[0]})
                 for r in rows]
        return found, (float(rows[-1].id) if rows else cursor)

    # sending ----------------------------------------------------------------------------

    def _send(self, rule: dict[str, Any], found: Found, state: str) -> None:
        try:
            channel = self.channels.get(PLATFORM, rule["channel"])
        except NotFound:
            log.warning("alert rule %s names the removed channel %s", rule["id"], rule["channel"])
            return
        title = found.title if state == "firing" else f"Resolved: {found.title}"
        message = Message(text=found.text, title=title, fields=found.fields, state=state,
                          alert={"kind": rule["kind"], "key": found.key})
        self.deliverer.record(channel, PLATFORM, "alert", message)


def _error_text(error: str | None) -> str:
    if not error:
        return "no error recorded"
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        detail = json.loads(error)
        return str(detail.get("message") or detail.get("code"))[:300]
    return error[:300]
