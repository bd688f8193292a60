"""Triggers: what runs a function without a call — cron schedules, storage and task
events, and signed inbound webhooks. Each run is a background task that records its
trigger.

``Triggers`` wires the parts: the service (API, hyac.toml), the scheduler (one run per
tick across agents) and the event dispatcher (told of storage changes and task ends).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from hyac_agent.logbus import LogBus
from hyac_agent.services.functions import FunctionService
from hyac_agent.store import Store
from hyac_agent.tasks import TaskService
from hyac_agent.tasks.outcomes import TaskOutcomes
from hyac_agent.tenancy.objects import ObjectService
from hyac_agent.triggers.events import EventDispatcher
from hyac_agent.triggers.scheduler import Scheduler
from hyac_agent.triggers.service import TriggerService

__all__ = ["EventDispatcher", "Scheduler", "TriggerService", "Triggers"]


class Triggers:
    def __init__(self, engine: Engine, store: Store, tasks: TaskService,
                 functions: FunctionService, logbus: LogBus, data_dir: Path,
                 outcomes: TaskOutcomes, objects: ObjectService, *,
                 interval: float, max_depth: int) -> None:
        self.service = TriggerService(engine, tasks, functions, logbus, data_dir)
        self.scheduler = Scheduler(self.service.store, store, logbus, self.service.fire,
                                   interval)
        self.events = EventDispatcher(self.service.store, store, self.service.fire, logbus,
                                      max_depth)
        outcomes.subscribe(self.events.task_ended)
        objects.subscribe(self.events.storage_changed)

    async def start(self) -> None:
        self.events.start()
        self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
