"""Waiting in the agent's background loops."""

from __future__ import annotations

import asyncio


async def wake_or_timeout(event: asyncio.Event, timeout: float) -> None:
    """Return once ``event`` is set or ``timeout`` seconds have passed, whichever is first.

    ``asyncio.wait_for(event.wait(), timeout)`` does the same on Python 3.12 and later.
    On 3.11, a cancellation that arrives as the event is set is lost: ``wait_for`` returns
    the event's result, the loop around it goes on, and whatever awaits the cancelled
    task (the agent stopping) waits for good. ``asyncio.wait`` never swallows it."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((waiter,), timeout=timeout)
    finally:
        waiter.cancel()
