"""Background tasks: a durable queue, embedded by default and on Celery for scale-out.

``TaskService`` is what the API and host calls use; ``TaskQueue`` is the engine that
carries work (``EmbeddedQueue`` or ``CeleryQueue``, chosen by ``HYAC_QUEUE``); both
engines run tasks through one ``TaskExecutor``.
"""

from __future__ import annotations

from hyac_agent.tasks.base import TaskQueue
from hyac_agent.tasks.execution import ExecutorParts, TaskExecutor, backoff, task_info
from hyac_agent.tasks.service import TaskService
from hyac_agent.tasks.settings import TaskSettings

__all__ = [
    "ExecutorParts",
    "TaskExecutor",
    "TaskQueue",
    "TaskService",
    "TaskSettings",
    "backoff",
    "make_queue",
    "task_info",
]


def make_queue(parts: ExecutorParts) -> TaskQueue:
    """The engine the settings name, running tasks through an executor of its own."""
    if parts.settings.engine == "celery":
        from hyac_agent.tasks.celery_queue import CeleryQueue

        return CeleryQueue(parts)
    from hyac_agent.tasks.embedded import EmbeddedQueue

    return EmbeddedQueue(parts)
