"""Task queue settings, each from its ``HYAC_*`` environment variable.

| setting            | environment variable     | default                                   |
|--------------------|--------------------------|-------------------------------------------|
| engine             | HYAC_QUEUE               | embedded (or celery)                      |
| broker_url         | HYAC_BROKER_URL          | redis://127.0.0.1:6379/0 (amqp://… works) |
| celery_queue       | HYAC_CELERY_QUEUE        | hyac                                      |
| concurrency        | HYAC_TASK_CONCURRENCY    | 4 tasks at once per agent or worker       |
| lease              | HYAC_TASK_LEASE          | 30 s: a run not renewed this long is lost |
| callback_retries   | HYAC_CALLBACK_RETRIES    | 5 more tries after a failed delivery      |
| callback_backoff   | HYAC_CALLBACK_BACKOFF    | 2 s before the first retry, doubling      |
| callback_allow_cidrs | HYAC_CALLBACK_ALLOW_CIDRS | "" (callbacks go to public addresses only) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hyac_agent.tasks.destinations import IPNetwork

ENGINES = ("embedded", "celery")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


@dataclass
class TaskSettings:
    engine: str = field(default_factory=lambda: _env("HYAC_QUEUE", "embedded").lower())
    broker_url: str = field(
        default_factory=lambda: _env("HYAC_BROKER_URL", "redis://127.0.0.1:6379/0")
    )
    celery_queue: str = field(default_factory=lambda: _env("HYAC_CELERY_QUEUE", "hyac"))
    concurrency: int = field(default_factory=lambda: int(_env("HYAC_TASK_CONCURRENCY", "4")))
    lease: float = field(default_factory=lambda: float(_env("HYAC_TASK_LEASE", "30")))
    callback_retries: int = field(
        default_factory=lambda: int(_env("HYAC_CALLBACK_RETRIES", "5"))
    )
    callback_backoff: float = field(
        default_factory=lambda: float(_env("HYAC_CALLBACK_BACKOFF", "2"))
    )
    callback_backoff_max: float = 600.0
    #: ranges callbacks may reach although they are not public (loopback, private, …):
    #: a comma list of CIDRs, for receivers on the agent's own host or network
    callback_allow_cidrs: list[str] = field(default_factory=lambda: [
        item for item in os.environ.get("HYAC_CALLBACK_ALLOW_CIDRS", "").split(",") if item.strip()
    ])
    #: how often a running task's lease is renewed and its cancellation checked
    heartbeat: float = 1.0
    #: how often the embedded dispatcher looks for due tasks when nothing woke it
    poll_interval: float = 0.5

    @cached_property
    def callback_allowed(self) -> list[IPNetwork]:
        from hyac_agent.tasks.destinations import parse_allowed

        return parse_allowed(self.callback_allow_cidrs)

    def validate(self) -> None:
        from hyac_common.errors import InvalidInput

        if self.engine not in ENGINES:
            raise InvalidInput(f"HYAC_QUEUE must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.concurrency < 1:
            raise InvalidInput("HYAC_TASK_CONCURRENCY must be at least 1")
        if self.lease < 1:
            raise InvalidInput("HYAC_TASK_LEASE must be at least 1 second")
        self.heartbeat = min(self.heartbeat, self.lease / 3)
        self.callback_allowed  # noqa: B018 - a CIDR that does not parse stops the agent here
