"""Notifications: channels, ``context.notify`` (the host call ``notify.send``), the
delivery log and the platform's alerts, as one part of the agent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from hyac_agent.notify.alerts import Alerts, AlertSources
from hyac_agent.notify.channels import Channel, ChannelStore, check_settings
from hyac_agent.notify.delivery import Deliverer, NotifySettings
from hyac_agent.notify.formats import Message, check_message
from hyac_agent.notify.tables import PLATFORM
from hyac_common.errors import InvalidInput

if TYPE_CHECKING:
    from hyac_agent.mail import MailSettings

_SEND_ARGS = {"channel", "text", "fields", "title"}
TEST_TEXT = "A test notification from Hyac: this channel works."


class NotifyService:
    def __init__(
        self,
        engine: Engine,
        data_dir: Path,
        settings: NotifySettings,
        admit: Callable[[str], AbstractAsyncContextManager[None]],
        mail_settings: Callable[[], MailSettings | None],
        sources: AlertSources,
    ) -> None:
        self.settings = settings
        #: tenant -> context that admits one notification (notifications_per_day)
        self.admit = admit
        self.channels = ChannelStore(engine, data_dir)
        self.deliveries = Deliverer(engine, self.channels, settings, mail_settings)
        self.alerts = Alerts(engine, self.channels, self.deliveries, sources,
                             settings.alert_interval)

    async def start(self) -> None:
        self.deliveries.start()
        self.alerts.start()

    async def stop(self) -> None:
        await self.alerts.stop()
        await self.deliveries.stop()

    # from functions -----------------------------------------------------------------

    async def host_call(self, tenant: str, op: str, args: dict[str, Any],
                        request_id: str | None) -> dict[str, Any]:
        if op != "notify.send":
            raise InvalidInput(f"unknown host call {op!r}")
        unknown = sorted(set(args) - _SEND_ARGS)
        if unknown:
            raise InvalidInput(f"notify: unknown argument {unknown[0]!r}")
        message = check_message(args.get("text"), args.get("fields"), args.get("title"))
        channel = await asyncio.to_thread(self.channels.reachable, tenant, args.get("channel"))
        async with self.admit(tenant):
            delivery_id = await self.deliveries.enqueue(channel, tenant, "function", message)
        return {"id": delivery_id}

    # from the API (blocking where it says so) ---------------------------------------

    def add_channel(self, scope: str, name: str, kind: str, url: str | None,
                    to: list[str] | None, shared: bool) -> tuple[Channel, str | None]:
        """Make a channel of ``scope`` (a tenant, or ``*``); with a generic webhook's
        signing key, shown this once (blocking)."""
        settings, summary = check_settings(name, kind, url, to, self.settings.allowed)
        channel = self.channels.add(scope, name, kind, settings, summary, shared)
        return channel, settings.get("signing_key")

    async def test_channel(self, scope: str, name: str, sender: str) -> str:
        """Send a test notification through ``scope``'s channel ``name``; its delivery id."""
        channel = await asyncio.to_thread(self.channels.get, scope, name)
        message = Message(text=TEST_TEXT, title="Hyac test notification",
                          fields={"channel": name, "sent by": sender if sender != PLATFORM
                                  else "the platform owner"})
        if sender == PLATFORM:
            return await self.deliveries.enqueue(channel, sender, "test", message)
        # A tenant's tests count as its notifications: no way round the quota.
        async with self.admit(sender):
            return await self.deliveries.enqueue(channel, sender, "test", message)
