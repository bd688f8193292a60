"""Invoking a function: find its active version, take a warm worker, run, map the result."""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypedDict

from hyac_agent.logbus import LogBus
from hyac_agent.pool import WorkerPool
from hyac_agent.services.functions import FunctionService
from hyac_agent.store import VersionRecord
from hyac_agent.worker import FunctionLoadError, Worker
from hyac_common.errors import FunctionTimeout, HyacError, OutOfMemory, WorkerCrashed
from hyac_common.wire import FunctionError, InvokeRequest, InvokeResult


class OutputTooLarge(HyacError):
    code = "output_too_large"
    status = 502


class _ResultBase(TypedDict):
    request_id: str
    version: int
    duration_ms: float


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


class InvokeService:
    def __init__(
        self, functions: FunctionService, pool: WorkerPool, logbus: LogBus, max_body_bytes: int
    ) -> None:
        self.functions = functions
        self.pool = pool
        self.logbus = logbus
        self.max_body_bytes = max_body_bytes
        # The worker serving each request in flight, so a task's run can be stopped.
        self._serving: dict[str, Worker] = {}
        #: tenant -> context admitting one invocation or raising (quotas: 429)
        self.admission: Callable[[str], contextlib.AbstractAsyncContextManager[None]] = _admit_all
        #: called with each request id once its invocation is over (open db transactions)
        self.request_ended: Callable[[str], Awaitable[None]] | None = None

    def _logged(
        self, exc: HyacError, tenant: str, name: str, version: int, request_id: str
    ) -> HyacError:
        self.logbus.emit(
            tenant=tenant, function=name, version=version, stream="system",
            request_id=request_id, level="ERROR", message=f"{exc.code}: {exc.message}",
        )
        return exc

    async def invoke(
        self,
        tenant: str,
        name: str,
        request: InvokeRequest,
        client_ip: str = "",
        *,
        request_id: str | None = None,
        version: VersionRecord | None = None,
        task: dict[str, Any] | None = None,
    ) -> InvokeResult:
        """Run the function once. A background task's run names its own request id and
        pinned ``version``, and passes ``task`` (id, attempt) on to the worker."""
        if version is None:
            version = await self.functions.active_version(tenant, name)
        request_id = request_id or new_request_id()
        started = time.perf_counter()
        payload: dict[str, Any] = {
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
                self._serving[request_id] = worker
                try:
                    message = await worker.invoke(
                        request_id, payload, version.config.timeout,
                        extra={"task": task} if task else None,
                    )
                finally:
                    self._serving.pop(request_id, None)
                    if self.request_ended is not None:
                        await self.request_ended(request_id)
        except (FunctionTimeout, WorkerCrashed, FunctionLoadError) as exc:
            self.logbus.emit(
                tenant=tenant, function=name, version=version.number, stream="system",
                request_id=request_id, level="ERROR", message=f"{exc.code}: {exc.message}",
            )
            exc.details.setdefault("request_id", request_id)
            raise
        duration = (time.perf_counter() - started) * 1000
        base = _ResultBase(request_id=request_id, version=version.number, duration_ms=duration)
        if message.get("ok"):
            response = message.get("response") or {}
            body = response.get("body_b64") or ""
            if len(body) * 3 // 4 > self.max_body_bytes:
                raise self._logged(OutputTooLarge(
                    f"function {name!r} returned more than {self.max_body_bytes} bytes",
                    request_id=request_id,
                ), tenant, name, version.number, request_id)
            headers = response.get("headers") or {}
            return InvokeResult(
                ok=True,
                status=int(response.get("status", 200)),
                headers={str(k): str(v) for k, v in headers.items()},
                body_b64=body,
                **base,
            )
        error = message.get("error") or {}
        if error.get("type") == "MemoryError":  # an address-space limit (rlimit) was hit
            raise self._logged(OutOfMemory(
                f"function {name!r} ran out of memory (MemoryError)", request_id=request_id
            ), tenant, name, version.number, request_id)
        if error.get("type") == "ValueError" and str(error.get("message", "")).startswith(
            "response too large"
        ):  # the worker could not even frame the response
            raise self._logged(OutputTooLarge(
                f"function {name!r} returned more than the 64 MiB frame limit",
                request_id=request_id,
            ), tenant, name, version.number, request_id)
        report = str(error.get("traceback") or f"{error.get('type')}: {error.get('message')}")
        for line in report.rstrip("\n").split("\n"):
            self.logbus.emit(
                tenant=tenant, function=name, version=version.number, stream="stderr",
                request_id=request_id, level="ERROR", message=line,
            )
        return InvokeResult(
            ok=False,
            status=500,
            error=FunctionError(
                type=str(error.get("type", "Error")),
                message=str(error.get("message", "")),
                traceback=str(error.get("traceback", "")),
            ),
            **base,
        )


    async def abort(self, request_id: str, reason: str) -> None:
        """Stop request ``request_id`` by killing its worker; other requests on that
        worker fail as crashed, as they do when a request times out."""
        worker = self._serving.get(request_id)
        if worker is not None:
            await worker.kill(reason)


@contextlib.asynccontextmanager
async def _admit_all(_tenant: str) -> AsyncIterator[None]:
    yield


def decode_body(result: InvokeResult) -> bytes:
    return base64.b64decode(result.body_b64) if result.body_b64 else b""
