"""The audit log: every mutating API call, appended once it has been answered.

An ASGI middleware maps (method, path) to an action, and records time, actor (from the
principal the auth dependency put on the request; ``-`` when authentication failed), the
actor's kind and stable id (``owner``/``owner`` for the agent's token, ``user``/``usr_…``
for a user: names can repeat after a removal, ids cannot) and the token it used, tenant,
action, target, the HTTP status as result, and the client address. Invocations
are not audited (they are not changes); reading is not either.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("hyac.audit")

_ACTIONS: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern), action) for method, pattern, action in [
        ("PUT", r"^/v1/functions/(?P<target>[^/]+)$", "deploy"),
        ("DELETE", r"^/v1/functions/(?P<target>[^/]+)$", "rm"),
        ("POST", r"^/v1/functions/(?P<target>[^/]+)/rollback$", "rollback"),
        ("POST", r"^/v1/tasks/(?P<target>[^/]+)/cancel$", "task.cancel"),
        ("POST", r"^/v1/tasks/(?P<target>[^/]+)/retry$", "task.retry"),
        ("PUT", r"^/v1/secrets/(?P<target>[^/]+)$", "secret.set"),
        ("DELETE", r"^/v1/secrets/(?P<target>[^/]+)$", "secret.rm"),
        ("PUT", r"^/v1/storage/(?P<target>.+)$", "storage.put"),
        ("DELETE", r"^/v1/storage/(?P<target>.+)$", "storage.rm"),
        ("PUT", r"^/v1/env$", "env.set"),
        ("DELETE", r"^/v1/env/(?P<target>[^/]+)$", "env.rm"),
        ("PUT", r"^/v1/quotas$", "quota.set"),
        ("PUT", r"^/v1/platform/quotas$", "platform.quota.set"),
        ("PUT", r"^/v1/users/(?P<target>[^/]+)$", "user.set"),
        ("DELETE", r"^/v1/users/(?P<target>[^/]+)$", "user.rm"),
        ("POST", r"^/v1/tokens$", "token.create"),
        ("POST", r"^/v1/schedules$", "schedule.add"),
        ("DELETE", r"^/v1/schedules/(?P<target>[^/]+)$", "schedule.rm"),
        ("POST", r"^/v1/schedules/(?P<target>[^/]+)/pause$", "schedule.pause"),
        ("POST", r"^/v1/schedules/(?P<target>[^/]+)/resume$", "schedule.resume"),
        ("POST", r"^/v1/schedules/(?P<target>[^/]+)/run$", "schedule.run"),
        ("POST", r"^/v1/triggers$", "trigger.add"),
        ("DELETE", r"^/v1/triggers/(?P<target>[^/]+)$", "trigger.rm"),
        ("POST", r"^/v1/webhooks$", "webhook.add"),
        ("DELETE", r"^/v1/webhooks/(?P<target>[^/]+)$", "webhook.rm"),
        ("DELETE", r"^/v1/tokens/(?P<target>[^/]+)$", "token.revoke"),
        ("POST", r"^/v1/tenants$", "tenant.create"),
        ("DELETE", r"^/v1/tenants/(?P<target>[^/]+)$", "tenant.rm"),
        ("PUT", r"^/v1/tenants/(?P<target>[^/]+)/egress$", "tenant.egress"),
        ("PUT", r"^/v1/system/integrations/(?P<target>[^/]+)$", "integration.set"),
        ("DELETE", r"^/v1/system/integrations/(?P<target>[^/]+)$", "integration.unset"),
        ("POST", r"^/v1/system/integrations/(?P<target>[^/]+)/test$", "integration.test"),
        ("POST", r"^/v1/notify/channels$", "notify.channel.add"),
        ("DELETE", r"^/v1/notify/channels/(?P<target>[^/]+)$", "notify.channel.rm"),
        ("POST", r"^/v1/notify/platform/channels$", "notify.platform.add"),
        ("DELETE", r"^/v1/notify/platform/channels/(?P<target>[^/]+)$", "notify.platform.rm"),
        ("POST", r"^/v1/notify/alerts$", "notify.alert.add"),
        ("DELETE", r"^/v1/notify/alerts/(?P<target>[^/]+)$", "notify.alert.rm"),
    ]
]
_MUTATING = {"PUT", "POST", "DELETE", "PATCH"}


def action_of(method: str, path: str) -> tuple[str, str | None] | None:
    for wanted, pattern, action in _ACTIONS:
        if wanted == method:
            match = pattern.match(path)
            if match:
                return action, match.groupdict().get("target")
    return None


def audit_entry(principal: Any, tenant: str | None, action: str, target: str | None,
                result: int, client: str | None) -> dict[str, Any]:
    """One audit record: ``principal`` is None when authentication failed."""
    return {
        "ts": time.time(),
        "actor": principal.name if principal is not None else "-",
        "actor_kind": principal.kind if principal is not None else None,
        "actor_id": principal.id if principal is not None else None,
        "actor_token": principal.token_id if principal is not None else None,
        "tenant": tenant[:63] if tenant else None,
        "action": action,
        "target": (target or "")[:256] or None,
        "result": result,
        "client": client,
    }


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _MUTATING \
                or not scope.get("path", "").startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        found = action_of(scope["method"], scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        status = 500
        recorded = False

        async def tracking_send(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Written before the answer completes: a caller that reads the log next
                # finds its own change in it.
                recorded = True
                await self._record(scope, found, status)
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            if not recorded:
                await self._record(scope, found, status)

    async def _record(self, scope: Scope, found: tuple[str, str | None], status: int) -> None:
        action, target = found
        state: dict[str, Any] = scope.get("state") or {}
        principal = state.get("principal")
        target = state.get("audit_target") or target
        headers = dict(scope.get("headers") or [])
        tenant = state.get("tenant") or headers.get(b"x-hyac-tenant", b"default").decode("latin-1")
        if action.startswith("tenant."):
            tenant = target
        elif action.startswith(("token.", "platform.", "integration.")) and "tenant" not in state:
            tenant = None
        client = scope.get("client")
        entry = audit_entry(principal, tenant, action, target, status,
                            client[0] if client else None)
        agent = scope["app"].state.agent
        try:
            await asyncio.to_thread(agent.tenancy.store.append_audit, entry)
        except Exception:
            log.exception("could not write the audit log")
