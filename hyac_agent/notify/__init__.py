"""Notification channels, ``context.notify``, durable delivery and platform alerts."""

from hyac_agent.notify.alerts import KINDS as ALERT_KINDS
from hyac_agent.notify.alerts import AlertSources
from hyac_agent.notify.channels import PLATFORM_PREFIX, Channel
from hyac_agent.notify.delivery import NotifySettings
from hyac_agent.notify.formats import CHANNEL_TYPES
from hyac_agent.notify.service import NotifyService
from hyac_agent.notify.tables import PLATFORM

__all__ = ["ALERT_KINDS", "CHANNEL_TYPES", "PLATFORM", "PLATFORM_PREFIX", "AlertSources",
           "Channel", "NotifyService", "NotifySettings"]
