"""Writing in batches off the event loop: a part that buffers records in memory and
stores them from a background loop, so the code producing them never waits on a disk;
and group commit, for writes whose callers wait until they are stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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


class GroupWriter(Generic[T, R]):
    """Writes what callers give at about the same time in one transaction (group commit),
    each caller waiting for its own item to be stored, and for what its write returned.

    An item given while no write is under way is written at once, alone: a lone caller
    waits no longer than before. Items given while a write is under way go together in
    the next one (``write_many``, on a thread). When a group's write fails, its items are
    written again one by one (``write_one``), so that each caller learns its own outcome:
    one item refused (a duplicate id) fails only its own caller.
    """

    max_group = 256

    def __init__(self, write_many: Callable[[list[T]], list[R]],
                 write_one: Callable[[T], R]) -> None:
        self._write_many = write_many
        self._write_one = write_one
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None  # the write under way, if any

    async def write(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        group: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                group = self._waiting[:self.max_group]
                del self._waiting[:self.max_group]
                outcomes = await self._store(group)
                for (_, future), (value, error) in zip(group, outcomes, strict=True):
                    if future.done():  # its caller gave up waiting
                        continue
                    if error is None:
                        future.set_result(value)  # type: ignore[arg-type]
                    else:
                        future.set_exception(error)
                group = []
        except BaseException:  # stopped (the loop shuts down): nobody may wait for ever
            for _, future in group + self._waiting:
                if not future.done():
                    future.set_exception(RuntimeError("the write was stopped before it ended"))
            self._waiting.clear()
            raise
        finally:
            self._drainer = None

    async def _store(
        self, group: list[tuple[T, asyncio.Future[R]]]
    ) -> list[tuple[R | None, Exception | None]]:
        items = [item for item, _ in group]
        try:
            if len(items) == 1:
                return [(await asyncio.to_thread(self._write_one, items[0]), None)]
            values = await asyncio.to_thread(self._write_many, items)
            return [(value, None) for value in values]
        except Exception as exc:
            if len(items) == 1:
                return [(None, exc)]
        outcomes: list[tuple[R | None, Exception | None]] = []
        for item in items:  # which of them was refused
            try:
                outcomes.append((await asyncio.to_thread(self._write_one, item), None))
            except Exception as exc:
                outcomes.append((None, exc))
        return outcomes
