"""One live worker: a sandboxed runtime serving many invocations of one function version.

The agent multiplexes invocations over the worker's channel by request id, answers
its host calls (with the tenant this worker belongs to, never one the worker names) and
turns its log frames and raw output into log records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from hyac_agent.execution.channel import FrameProtocol, ProtocolError, encode_frame
from hyac_agent.logbus import LogBus
from hyac_agent.logframes import LogBudget
from hyac_agent.sandbox import Sandbox, SandboxSpec
from hyac_common.errors import (
    FunctionLoadError,
    FunctionTimeout,
    HyacError,
    InternalError,
    InvalidInput,
    OutOfMemory,
    WorkerCrashed,
)
from hyac_common.protocol import (
    AgentFrame,
    HostCallFrame,
    HostCallResultFrame,
    InitErrorFrame,
    InitFrame,
    InvokeFrame,
    ReadyFrame,
    RequestInfo,
    ResultFrame,
    TaskRef,
    WorkerFrame,
    version_problem,
)

log = logging.getLogger("hyac.worker")

#: (tenant, op, args, request id of the caller's own request in flight or None) -> value
HostCallHandler = Callable[[str, str, dict[str, Any], "str | None"], Awaitable[Any]]
#: told when a worker starts draining, so no new request is sent to it
DrainHandler = Callable[["Worker"], None]
INIT_TIMEOUT = 30.0


class Worker:
    def __init__(
        self,
        spec: SandboxSpec,
        sha256: str,
        sandbox: Sandbox,
        logbus: LogBus,
        host_calls: HostCallHandler,
        on_drain: DrainHandler | None = None,
    ) -> None:
        self.spec = spec
        self.sha256 = sha256
        self.sandbox = sandbox
        #: the tenant's ``worker_state`` when this worker started (None: unknown)
        self.tenant_state: str | None = None
        self.logbus = logbus
        self.host_calls = host_calls
        self._on_drain = on_drain
        self.pending: dict[str, asyncio.Future[ResultFrame]] = {}
        self.last_used = self.started_at = time.monotonic()
        self.dead = False
        self.death_reason = "the worker exited"
        self.death_error: type[WorkerCrashed] = WorkerCrashed
        #: takes no new requests; stopped once the ones on it have ended
        self.draining = False
        # Requests already answered (timed out, cancelled) whose code may still run here:
        # their host calls are refused, so an answered request changes nothing more.
        self._abandoned: dict[str, HyacError] = {}
        #: the agent asked it to leave (``shutdown``): an exit with 0 is no crash
        self._leaving = False
        self._logs = LogBudget(self._system_log)
        # The tenant's secret values this worker may read stay redacted until it is gone.
        self._release_secrets = logbus.hold_secrets(spec.tenant)
        self._ready: asyncio.Future[ReadyFrame | InitErrorFrame] = (
            asyncio.get_running_loop().create_future()
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._writer: asyncio.WriteTransport | None = None
        self._outbox: list[bytes] | None = None  # frames to write at the loop's next turn
        self._killing = False

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    @property
    def accepting(self) -> bool:
        """Whether a new request may be sent to this worker."""
        return not self.dead and not self.draining

    # life cycle --------------------------------------------------------------------------

    async def start(self, init: InitFrame) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_unix_connection(
            lambda: FrameProtocol(self._dispatch_frame, self._channel_ended),
            sock=self.sandbox.channel,
        )
        self._writer = cast(asyncio.WriteTransport, transport)
        process = self.sandbox.process
        self._tasks = [
            asyncio.create_task(self._read_output(process.stdout, "stdout")),
            asyncio.create_task(self._read_output(process.stderr, "stderr")),
            asyncio.create_task(self._watch_exit()),
        ]
        self._send(init)
        try:
            message = await asyncio.wait_for(asyncio.shield(self._ready), INIT_TIMEOUT)
        except asyncio.TimeoutError:
            await self.kill("the worker did not start in time")
            raise WorkerCrashed(f"the worker did not start within {INIT_TIMEOUT:.0f}s") from None
        except WorkerCrashed:
            await self.kill(self.death_reason)
            raise
        if message["type"] == "init_error":
            await self.kill("the function failed to load")
            error = message.get("error") or {}
            raise FunctionLoadError(
                error.get("message") or "the function failed to load",
                type=error.get("type", "Error"),
                traceback=error.get("traceback", ""),
            )
        # A runtime added by a user may speak another version: refused before any request.
        problem = version_problem(message.get("protocol"))
        if problem is not None:
            await self.kill("the runtime speaks another worker protocol")
            raise FunctionLoadError(
                f"runtime {self.spec.runtime.name!r} cannot serve this agent: {problem}",
                type="ProtocolMismatch", traceback="",
            )

    async def kill(self, reason: str) -> None:
        if not self.dead:
            self.dead = True
            self.death_reason = reason
        self._killing = True  # the channel's end that closing it brings is ours
        self._fail_pending()
        if self._writer is not None:
            # Close the transport before the socket goes: a socket closed under a live
            # transport leaves its fd number registered with the loop, and the next
            # socket given that number (a new sandbox's listener) is refused.
            self._writer.close()
        await self.sandbox.kill()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._release_secrets()  # it can log nothing more

    def drain(self, reason: str) -> None:
        """Take no new requests; the ones on the worker run on to their own deadlines,
        then the pool stops it."""
        if self.draining or self.dead:
            return
        self.draining = True
        log.info("worker %s draining: %s", self.sandbox.pid, reason)
        if self._on_drain is not None:
            self._on_drain(self)

    def abandon(self, request_id: str, error: HyacError, reason: str) -> None:
        """Answer request ``request_id`` with ``error`` now and drain the worker: its code
        cannot be stopped alone, but the worker's other requests need not fail with it."""
        future = self.pending.get(request_id)
        if future is None:
            return
        self._abandoned[request_id] = error
        if not future.done():
            future.set_exception(error)
            # Marked as read: a waiter that has gone (cancelled) never reads it, and an
            # exception nobody reads is logged as "never retrieved" when collected.
            future.exception()
        if not self.draining and not self.dead:
            self._system_log(f"worker draining: {reason}; requests already on it finish first")
        self.drain(reason)

    async def shutdown(self) -> None:
        """Ask the worker to leave, and make sure it has. One still running the code of
        requests already answered is stopped at once: it would wait for that code."""
        if not self.dead and not self._abandoned:
            self._leaving = True
            with contextlib.suppress(Exception):
                self._send({"type": "shutdown"})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.sandbox.process.wait(), 2)
        await self.kill("shut down")

    # invocations -------------------------------------------------------------------------

    async def invoke(
        self, request_id: str, request: RequestInfo, timeout: float, task: TaskRef | None = None,
    ) -> ResultFrame:
        """Run one invocation; the raw ``result`` frame, or FunctionTimeout/WorkerCrashed.

        ``task`` names the background task the invocation runs, if any."""
        if self.dead:
            raise self.death_error(self.death_reason)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultFrame] = loop.create_future()
        self.pending[request_id] = future
        self.last_used = time.monotonic()
        timer: asyncio.TimerHandle | None = None
        try:
            deadline = time.time() + timeout
            frame: InvokeFrame = {"type": "invoke", "id": request_id, "request": request,
                                  "deadline": deadline}
            if task is not None:
                frame["task"] = task
            self._send(frame)
            # A timer that answers the future, rather than wait_for(shield(future)): the
            # same outcome without two more futures and their callbacks per invocation.
            timer = loop.call_later(timeout, self._overran, request_id, timeout)
            return await future
        finally:
            if timer is not None:
                timer.cancel()
            self.pending.pop(request_id, None)
            self.last_used = time.monotonic()

    def _overran(self, request_id: str, timeout: float) -> None:
        """Only this request is over: answer it now, and drain the worker (the overrunning
        code cannot be stopped alone) rather than fail its neighbours."""
        future = self.pending.get(request_id)
        if future is None or future.done():  # answered in the same turn of the loop
            return
        error = FunctionTimeout(f"function {self.spec.function!r} timed out after {timeout:g}s")
        self.abandon(request_id, error, f"request {request_id} exceeded its timeout")

    # channel -----------------------------------------------------------------------------

    def _send(self, message: AgentFrame) -> None:
        if self._writer is None or self._writer.is_closing():
            raise WorkerCrashed(self.death_reason)
        frame = encode_frame(message)
        if self._outbox is not None:
            self._outbox.append(frame)
            return
        loop = asyncio.get_running_loop()
        if not getattr(loop, "_ready", True):
            # Nothing else is to run in this turn of the loop (asyncio's queue of ready
            # callbacks is empty), so no frame can join this one: it leaves now, not a
            # turn later (a lone request's latency).
            self._writer.write(frame)
            return
        # Frames sent in one turn of the event loop leave in one write: under load, one
        # wake-up of the worker for the requests that arrived together, not one each.
        self._outbox = [frame]
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        frames, self._outbox = self._outbox or [], None
        if frames and self._writer is not None and not self._writer.is_closing():
            self._writer.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def _dispatch_frame(self, message: WorkerFrame) -> None:
        """A whole frame from the channel, in the turn of the loop it arrived in."""
        try:
            self._dispatch(message)
        except ProtocolError:
            raise  # ends the channel (_channel_ended)
        except Exception:  # a bug of ours: the worker and its requests go, loudly
            log.exception("worker %s: a frame could not be handled", self.sandbox.pid)
            raise ProtocolError("a frame could not be handled") from None

    def _channel_ended(self, error: ProtocolError | None) -> None:
        if self._killing:
            return
        if error is not None:
            log.warning("worker %s broke the protocol: %s", self.sandbox.pid, error)
            self._system_log(f"worker broke the protocol: {error}")
        task = asyncio.create_task(self._after_channel())
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    async def _after_channel(self) -> None:
        if not self.dead:
            # The channel usually closes just before the exit is seen: learn why it died.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.sandbox.process.wait()), 2)
            await self._classify_exit()
        await self.kill(self.death_reason if self.dead else "the worker closed its channel")

    def _dispatch(self, message: WorkerFrame) -> None:
        if message["type"] == "result":
            future = self.pending.get(str(message.get("id")))
            if future is not None and not future.done():
                future.set_result(message)
        elif message["type"] == "log":
            # Charged to the request in flight here that it names, fields cut (logframes).
            line = self._logs.frame(message, self.pending)
            if line is not None:
                self.logbus.emit(
                    tenant=self.spec.tenant, function=self.spec.function,
                    version=self.spec.version, stream=line.stream, message=line.message,
                    request_id=line.request_id, level=line.level,
                )
        elif message["type"] == "hostcall":
            task = asyncio.create_task(self._answer_host_call(message))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)
        elif message["type"] == "ready" or message["type"] == "init_error":
            if not self._ready.done():
                self._ready.set_result(message)
        else:
            raise ProtocolError(f"unexpected message type {message['type']!r}")

    def _forget_task(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _answer_host_call(self, message: HostCallFrame) -> None:
        call = message.get("call")
        op = message.get("op")
        args = message.get("args") if isinstance(message.get("args"), dict) else {}
        reply: HostCallResultFrame = {"type": "hostcall_result", "call": call, "ok": False}
        try:
            if not isinstance(op, str):
                raise InvalidInput("host call without an operation")
            # The request id is the worker's word: honour it only for a request that is
            # in flight on this very worker, so it cannot speak for anyone else's.
            request_id = message.get("id")
            ended = self._abandoned.get(request_id) if isinstance(request_id, str) else None
            if ended is not None:
                raise type(ended)(f"request {request_id} has ended: {ended.message}")
            own = request_id if isinstance(request_id, str) and request_id in self.pending else None
            reply["value"] = await self.host_calls(self.spec.tenant, op, args or {}, own)
            reply["ok"] = True
        except HyacError as exc:
            # Scalar details travel too: what a nested call's callee raised, for one.
            error = {k: v for k, v in exc.details.items() if isinstance(v, (str, int, float, bool))}
            reply["error"] = {**error, "code": exc.code, "message": exc.message}
        except Exception:
            log.exception("host call %s failed", op)
            reply["error"] = {"code": InternalError.code, "message": "host call failed"}
        with contextlib.suppress(WorkerCrashed, ProtocolError):
            self._send(reply)

    async def _read_output(self, stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream's limit
                line = await stream.read(64 * 1024)
            if not line:
                return
            text = self._logs.raw(line, name)
            if text is not None:
                self.logbus.emit(
                    tenant=self.spec.tenant, function=self.spec.function,
                    version=self.spec.version, stream=name, message=text,
                )

    async def _watch_exit(self) -> None:
        await self.sandbox.process.wait()
        await self._classify_exit()
        self._fail_pending()

    async def _classify_exit(self) -> None:
        """Mark the worker dead with the most specific reason the sandbox can give."""
        if self.dead:
            return
        code = self.sandbox.process.returncode
        if self._leaving and code == 0:
            # It left when asked. Seen first, on a loaded host, when this wait wakes
            # before shutdown()'s own: not a crash to tell the function's logs about.
            self.dead = True
            self.death_reason = "shut down"
            return
        cause = await asyncio.to_thread(self.sandbox.exit_cause)
        if self.dead:
            return
        self.dead = True
        if cause == "out_of_memory":
            self.death_error = OutOfMemory
            limit = self.spec.limits.memory_bytes // (1024 * 1024)
            self.death_reason = f"the worker ran out of memory (limit {limit} MiB) and was killed"
        else:
            self.death_reason = f"the worker exited unexpectedly (exit code {code})"
        self._system_log(f"{self.death_error.code}: {self.death_reason}")

    def _fail_pending(self) -> None:
        if not self._ready.done():
            self._ready.set_exception(self.death_error(self.death_reason))
            self._ready.exception()  # mark retrieved
        for future in self.pending.values():
            if not future.done():
                future.set_exception(self.death_error(self.death_reason))

    def _system_log(self, message: str) -> None:
        self.logbus.emit(
            tenant=self.spec.tenant, function=self.spec.function, version=self.spec.version,
            stream="system", message=message,
        )
