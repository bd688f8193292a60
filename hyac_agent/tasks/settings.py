"""Task queue settings. The agent reads them from their ``HYAC_*`` environment
variables (HYAC_QUEUE, HYAC_BROKER_URL, HYAC_TASK_*, HYAC_CALLBACK_*) and checks them
with its other settings: see the table in ``hyac_agent/config.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hyac_agent.tasks.destinations import IPNetwork


@dataclass
class TaskSettings:
    engine: str = "embedded"
    broker_url: str = "redis://127.0.0.1:6379/0"
    celery_queue: str = "hyac"
    concurrency: int = 4
    lease: float = 30.0
    callback_retries: int = 5
    callback_backoff: float = 2.0
    callback_backoff_max: float = 600.0
    #: ranges callbacks may reach although they are not public (loopback, private, …):
    #: CIDRs, for receivers on the agent's own host or network
    callback_allow_cidrs: list[str] = field(default_factory=list)
    #: how often a running task's lease is renewed and its cancellation checked
    heartbeat: float = 1.0
    #: how often the embedded dispatcher looks for due tasks when nothing woke it
    poll_interval: float = 0.5

    @cached_property
    def callback_allowed(self) -> list[IPNetwork]:
        from hyac_agent.tasks.destinations import parse_allowed

        return parse_allowed(self.callback_allow_cidrs)
