"""The agent's app in the test's own process, reached through ``httpx.ASGITransport``.

Built as ``hyac-agent serve --insecure-no-sandbox`` builds it (``AgentConfig``, ``Agent``,
``create_app``), but served by no socket and no uvicorn: an event loop in a thread runs
the app's lifespan and its requests, and a synchronous httpx transport hands each request
to it. Functions run unsandboxed, as plain child processes. For API tests of what the
agent answers (validation, errors, authentication); whatever is about isolation, the
HTTP server or the process itself needs a real agent (``tests.conftest.start_agent``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.conftest import AgentClient

URL = "http://agent.test"
# A request that takes longer than this is stuck: the agent's own limits are far below.
REQUEST_CEILING = 120.0
T = TypeVar("T")


class _SyncBody(httpx.AsyncByteStream):
    """A synchronous request body read chunk by chunk, as the server would receive it."""

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if isinstance(self._stream, httpx.AsyncByteStream):
            async for chunk in self._stream:
                yield chunk
        else:
            for chunk in self._stream:
                yield chunk


class LoopTransport(httpx.BaseTransport):
    """A synchronous transport that runs each request through ``ASGITransport`` on ``loop``."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._asgi = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        self._loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return run_on(self._loop, self._send(request))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        request.stream = _SyncBody(request.stream)
        answer = await self._asgi.handle_async_request(request)
        raw = b"".join([chunk async for chunk in answer.aiter_raw()])  # still encoded
        return httpx.Response(answer.status_code, headers=answer.headers,
                              stream=httpx.ByteStream(raw))


def run_on(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    future = asyncio.run_coroutine_threadsafe(work, loop)
    try:
        return future.result(timeout=REQUEST_CEILING)
    except concurrent.futures.TimeoutError:
        # What each of the agent's threads and tasks was doing: the failure then says
        # where it hung, not only that it did.
        raise TimeoutError(f"the agent did not finish within {REQUEST_CEILING:g}s\n"
                           + _where_everything_is(loop)) from None


def _where_everything_is(loop: asyncio.AbstractEventLoop) -> str:
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts = [f"--- thread {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame))
             for ident, frame in sys._current_frames().items()]
    try:
        tasks = list(asyncio.all_tasks(loop))
    except RuntimeError:  # changed while read from this thread
        tasks = []
    for task in tasks:
        out = io.StringIO()
        task.print_stack(limit=8, file=out)
        parts.append(f"--- {out.getvalue()}")
    return "\n".join(parts)


@dataclass
class InProcessAgent(AgentClient):
    """An agent app in this process: ``client()``, ``deploy()`` and ``invoke()`` as for a
    real one; ``agent`` is the app's ``hyac_agent.core.Agent``."""

    agent: Any = None
    transport: LoopTransport | None = None

    def _transport(self) -> httpx.BaseTransport | None:
        return self.transport

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` (e.g. a call of ``agent``'s parts) on the app's own loop."""
        assert self.transport is not None
        return run_on(self.transport._loop, work)


class ManualClock:
    """A wall clock that stands still until the test moves it (``clock.now += 60``)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def in_process_agent(data_dir: Path, clock: Callable[[], float] = time.time
                     ) -> Iterator[InProcessAgent]:
    """Start the app (its lifespan included) on a loop of its own; stop it on exit.

    The settings come from the environment (``HYAC_*``), as for ``hyac-agent serve``;
    ``clock`` is the agent's wall clock for quota windows (a test may drive it)."""
    from hyac_agent.api import create_app
    from hyac_agent.config import AgentConfig
    from hyac_agent.core import Agent

    agent = Agent(AgentConfig(insecure_no_sandbox=True, data_dir=data_dir), clock=clock)
    app = create_app(agent, URL)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="in-process-agent", daemon=True)
    thread.start()
    lifespan = AsyncExitStack()

    async def start() -> None:
        await lifespan.enter_async_context(app.router.lifespan_context(app))

    async def stop() -> None:
        try:
            await lifespan.aclose()
        finally:
            await loop.shutdown_default_executor()

    try:
        run_on(loop, start())
        yield InProcessAgent(URL, agent.token, data_dir, agent=agent,
                             transport=LoopTransport(app, loop))
    finally:
        try:
            run_on(loop, stop())  # whatever of the lifespan began, and the agent's threads
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=REQUEST_CEILING)
            loop.close()
