"""Invoking a function: find its active version, take a warm worker, run, map the result."""

from __future__ import annotations

import base64
import binascii
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from hyac_agent.execution.pool import WorkerPool
from hyac_agent.execution.worker import Worker
from hyac_agent.ids import random_hex
from hyac_agent.logbus import LogBus
from hyac_agent.metrics import InvocationMetrics, metered, note_version, note_worker
from hyac_agent.services.functions import FunctionService
from hyac_agent.store import VersionRecord
from hyac_common import protocol
from hyac_common.errors import (
    CallDepthExceeded,
    FunctionLoadError,
    FunctionTimeout,
    HyacError,
    InvalidInput,
    InvocationFailed,
    OutOfMemory,
    OutputTooLarge,
    PayloadTooLarge,
    RequestCancelled,
    WorkerCrashed,
)
from hyac_common.names import validate_name
from hyac_common.protocol import RequestInfo, TaskRef
from hyac_common.wire import FunctionError, InvokeRequest, InvokeResult

#: how deep ``context.invoke`` calls may nest, the outermost invocation counting as 1
MAX_CALL_DEPTH = 8
#: a nested call gets at least this much of its caller's time, or fails with ``timeout``
MIN_NESTED_TIMEOUT = 0.05


@dataclass(frozen=True)
class _InFlight:
    depth: int  # 1 for an invocation from the API, the gateway or the task queue
    deadline: float  # time.monotonic() by which it must be done


class _ResultBase(TypedDict):
    request_id: str
    version: int
    duration_ms: float


def new_request_id() -> str:
    return "req_" + random_hex(8)


class InvokeService:
    def __init__(
        self,
        functions: FunctionService,
        pool: WorkerPool,
        logbus: LogBus,
        max_body_bytes: int,
        metrics: InvocationMetrics,
        admission: Callable[[str], contextlib.AbstractAsyncContextManager[None]],
        request_ended: Callable[[str], Awaitable[None]],
    ) -> None:
        self.functions = functions
        #: counts every invocation once it ends (``metered``)
        self.metrics = metrics
        self.pool = pool
        self.logbus = logbus
        self.max_body_bytes = max_body_bytes
        # The worker serving each request in flight, so a task's run can be stopped.
        self._serving: dict[str, Worker] = {}
        # Call depth and deadline of each request in flight: the agent's own record, so
        # nested calls (function.invoke) never rely on what a worker says about itself.
        self._in_flight: dict[str, _InFlight] = {}
        #: tenant -> context admitting one invocation or raising (quotas: 429)
        self.admission = admission
        #: called with each request id once its invocation is over (open db transactions)
        self.request_ended = request_ended

    def _logged(
        self, exc: HyacError, tenant: str, name: str, version: int, request_id: str
    ) -> HyacError:
        self.logbus.emit(
            tenant=tenant, function=name, version=version, stream="system",
            request_id=request_id, level="ERROR", message=f"{exc.code}: {exc.message}",
        )
        return exc

    @metered
    async def invoke(
        self,
        tenant: str,
        name: str,
        request: InvokeRequest,
        client_ip: str = "",
        *,
        request_id: str | None = None,
        version: VersionRecord | None = None,
        task: TaskRef | None = None,
        depth: int = 1,
        deadline: float | None = None,
    ) -> InvokeResult:
        """Run the function once. A background task's run names its own request id and
        pinned ``version``, and passes ``task`` (id, attempt) on to the worker. A nested
        call (``invoke_from_function``) passes its ``depth`` and a ``deadline``
        (``time.monotonic()``) that caps the function's own timeout."""
        if version is None:
            version = await self.functions.active_version(tenant, name)
        request_id = request_id or new_request_id()
        note_version(version)
        started = time.perf_counter()
        payload: RequestInfo = {
            "method": request.method.upper(),
            "path": request.path or "/",
            "query": request.query,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body_b64": request.body_b64,
            "client_ip": client_ip,
        }
        try:
            async with self.admission(tenant):
                worker = await self.pool.acquire(version)
                note_worker(worker)
                limit = version.config.timeout
                if deadline is not None:  # what is left once the worker is there
                    limit = min(limit, deadline - time.monotonic())
                    if limit < MIN_NESTED_TIMEOUT:
                        raise FunctionTimeout(
                            f"no time was left to run {name!r} before its caller's deadline"
                        )
                self._serving[request_id] = worker
                self._in_flight[request_id] = _InFlight(depth, time.monotonic() + limit)
                try:
                    message = await worker.invoke(
                        request_id, payload, limit, task=task,
                    )
                finally:
                    self._serving.pop(request_id, None)
                    self._in_flight.pop(request_id, None)
                    await self.request_ended(request_id)
        except (FunctionTimeout, WorkerCrashed, FunctionLoadError) as exc:
            if isinstance(exc, FunctionLoadError):  # the user's module may print a secret
                exc.message = self.logbus.redact(tenant, exc.message)
                exc.details["traceback"] = self.logbus.redact(
                    tenant, str(exc.details.get("traceback", ""))
                )
            self.logbus.emit(
                tenant=tenant, function=name, version=version.number, stream="system",
                request_id=request_id, level="ERROR", message=f"{exc.code}: {exc.message}",
            )
            exc.details.setdefault("request_id", request_id)
            raise
        duration = (time.perf_counter() - started) * 1000
        base = _ResultBase(request_id=request_id, version=version.number, duration_ms=duration)
        if message.get("ok"):
            response: Mapping[str, Any] = message.get("response") or {}
            body = response.get("body_b64") or ""
            if len(body) * 3 // 4 > self.max_body_bytes:
                raise self._logged(OutputTooLarge(
                    f"function {name!r} returned more than {self.max_body_bytes} bytes",
                    request_id=request_id,
                ), tenant, name, version.number, request_id)
            headers = response.get("headers") or {}
            if not isinstance(body, str):
                raise TypeError(f"the worker answered a body of type {type(body).__name__}")
            # Built without validation (a cost of every invocation): each field is
            # converted here, from what the worker sent, to the type the model declares.
            return InvokeResult.model_construct(
                ok=True,
                status=int(response.get("status", 200)),
                headers={str(k): _header_value(k, v) for k, v in headers.items()},
                body_b64=body,
                **base,
            )
        error: Mapping[str, Any] = message.get("error") or {}
        # What the runtime itself recognised says so in its code (hyac_common/protocol.py);
        # any other error is the function's own.
        if error.get("code") == protocol.OUT_OF_MEMORY:  # e.g. an rlimit hit (MemoryError)
            raise self._logged(OutOfMemory(
                f"function {name!r} ran out of memory ({error.get('type', 'Error')})",
                request_id=request_id,
            ), tenant, name, version.number, request_id)
        if error.get("code") == protocol.TIMED_OUT:
            # The runtime stopped the function at the deadline the agent sent (the engine
            # of python3.12-wasm does): the same timeout as when the agent's own timer
            # is first, whichever notices it.
            raise self._logged(FunctionTimeout(
                f"function {name!r} timed out after {limit:g}s",
                request_id=request_id,
            ), tenant, name, version.number, request_id)
        if error.get("code") == protocol.OUTPUT_TOO_LARGE:  # the response could not be framed
            raise self._logged(OutputTooLarge(
                f"function {name!r} returned more than the 64 MiB frame limit",
                request_id=request_id,
            ), tenant, name, version.number, request_id)
        # Redacted here, once for every caller: the API, the gateway, a task, a caller.
        error_message = self.logbus.redact(tenant, str(error.get("message", "")))
        traceback = self.logbus.redact(tenant, str(error.get("traceback", "")))
        report = traceback or f"{error.get('type')}: {error_message}"
        for line in report.rstrip("\n").split("\n"):
            self.logbus.emit(
                tenant=tenant, function=name, version=version.number, stream="stderr",
                request_id=request_id, level="ERROR", message=line,
            )
        return InvokeResult(
            ok=False,
            status=500,
            error=FunctionError(
                type=str(error.get("type", "Error")), message=error_message, traceback=traceback,
            ),
            **base,
        )

    async def invoke_from_function(
        self, tenant: str, caller: str | None, args: dict[str, Any]
    ) -> dict[str, Any]:
        """``function.invoke``: run a function of the caller's own ``tenant`` now, one
        level deeper than the ``caller``'s request and within the time it has left."""
        parent = self._in_flight.get(caller) if caller is not None else None
        if parent is None:
            raise InvalidInput("context.invoke() works only while the calling request runs")
        name = args.get("function")
        if not isinstance(name, str):
            raise InvalidInput("function.invoke needs a function name")
        validate_name(name)
        depth = parent.depth + 1
        if depth > MAX_CALL_DEPTH:
            raise CallDepthExceeded(
                f"calling {name!r} would nest invocations {depth} deep; "
                f"context.invoke() calls nest at most {MAX_CALL_DEPTH} deep"
            )
        # The callee ends a little before its caller must, so the caller can still answer.
        remaining = parent.deadline - time.monotonic()
        deadline = parent.deadline - min(0.5, max(remaining, 0.0) * 0.1)
        request = _nested_request(args, self.max_body_bytes)
        result = await self.invoke(tenant, name, request, depth=depth, deadline=deadline)
        if not result.ok:
            error = result.error or FunctionError(type="Error", message="")
            raise InvocationFailed(
                error.message, type=error.type, traceback=error.traceback, function=name,
                request_id=result.request_id,
            )
        return {
            "status": result.status, "headers": result.headers, "body_b64": result.body_b64,
            "request_id": result.request_id, "version": result.version,
        }

    def serving(self, request_id: str | None) -> tuple[str, int] | None:
        """(function, version) of request ``request_id`` while it runs."""
        worker = self._serving.get(request_id) if request_id is not None else None
        return None if worker is None else (worker.spec.function, worker.spec.version)

    async def abort(self, request_id: str, reason: str) -> None:
        """End request ``request_id`` now (RequestCancelled); its worker is drained, so
        the other requests on it finish by their own deadlines, as after a timeout."""
        worker = self._serving.get(request_id)
        if worker is not None:
            worker.abandon(request_id, RequestCancelled(reason, request_id=request_id), reason)


def _nested_request(args: dict[str, Any], max_body_bytes: int) -> InvokeRequest:
    """The callee's request from ``function.invoke`` arguments, checked."""
    method = args.get("method", "POST")
    if not isinstance(method, str) or not method.isalpha() or len(method) > 16:
        raise InvalidInput("function.invoke method must be an HTTP method")
    path = args.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInput("function.invoke path must start with '/'")
    maps: dict[str, dict[str, str]] = {}
    for field in ("query", "headers"):
        value = args.get(field) or {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise InvalidInput(f"function.invoke {field} must map strings to strings")
        maps[field] = value
    body = args.get("body_b64") or ""
    if not isinstance(body, str):
        raise InvalidInput("function.invoke body_b64 must be a base64 string")
    try:
        size = len(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError):
        raise InvalidInput("function.invoke body_b64 is not valid base64") from None
    if size > max_body_bytes:
        raise PayloadTooLarge(f"the request body is larger than {max_body_bytes} bytes")
    return InvokeRequest(
        method=method.upper(), path=path, query=maps["query"], headers=maps["headers"],
        body_b64=body,
    )


def _header_value(name: object, value: object) -> str:
    """A response header as a runtime may send it: a string, or a list of values (one
    each), which becomes what the runtimes of docs/protocol.md send: Set-Cookie's values
    a line each (the gateway sends each as a header of its own), any other's joined by
    ", ", as HTTP combines repeated headers."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ("\n" if str(name).lower() == "set-cookie" else ", ").join(map(str, value))
    return str(value)
