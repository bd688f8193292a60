"""Writing in batches off the event loop: a part that buffers records in memory and
stores them from a background loop, so the code producing them never waits on a disk."""

from __future__ import annotations

import asyncio
import contextlib


class BatchWriter:
    """Calls ``flush`` every ``flush_interval`` seconds between ``start`` and ``stop``,
    and once more at ``stop`` so nothing buffered is lost on a clean shutdown."""

    flush_interval: float = 1.0
    _task: asyncio.Task[None] | None = None

    async def flush(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()
