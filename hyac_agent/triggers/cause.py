"""The request on whose behalf the current host call runs, for event triggers: a storage
event caused by a function's run carries that run's trigger depth on (loops are cut).

Set by the host call path; ``asyncio.to_thread`` copies it into the thread that writes."""

from __future__ import annotations

from contextvars import ContextVar

CAUSE: ContextVar[str | None] = ContextVar("hyac_trigger_cause", default=None)
