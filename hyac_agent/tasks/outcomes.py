"""Who is told that a task ended: the one place event triggers learn of task outcomes.

Each end (succeeded, or dead) is told exactly once across every process sharing the
store: only the process whose guarded UPDATE recorded the end tells its listeners.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hyac_agent.store import TaskRecord

#: called with the task as it was before its end, and the status it ended in
OutcomeListener = Callable[[TaskRecord, str], Awaitable[None]]


class TaskOutcomes:
    """Listeners of task ends; built before the queue, subscribed to by later parts."""

    def __init__(self) -> None:
        self.listeners: list[OutcomeListener] = []

    def subscribe(self, listener: OutcomeListener) -> None:
        self.listeners.append(listener)
