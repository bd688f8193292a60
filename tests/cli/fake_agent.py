"""An in-process stand-in for the agent's HTTP API (docs/api.md), served to the CLI
through ``httpx.MockTransport``. It validates what it receives with the shared wire
models, so a CLI that sends the wrong shape fails here as it would against the agent."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pydantic

from hyac_common.wire import (
    DeployRequest,
    FunctionSummary,
    InvokeRequest,
    InvokeResult,
    LogRecord,
    RollbackRequest,
    VersionInfo,
)

URL = "http://agent.test"
TOKEN = "test-token"

InvokeHandler = Callable[[str, InvokeRequest], "InvokeResult | httpx.Response"]


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


def ok_result(body: Any, content_type: str = "application/json", status: int = 200) -> InvokeResult:
    raw = json.dumps(body).encode() if content_type == "application/json" else body
    return InvokeResult(
        ok=True, request_id="req_test1", version=1, duration_ms=1.5, status=status,
        headers={"content-type": content_type} if content_type else {},
        body_b64=base64.b64encode(raw).decode(),
    )


@dataclass
class FakeAgent:
    versions: dict[tuple[str, str], list[VersionInfo]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    # Lines of the /v1/logs/stream body; an exception instance is raised when reached.
    stream: list[Any] = field(default_factory=list)
    on_invoke: InvokeHandler | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- helpers for tests ----------------------------------------------------------

    def calls(self, method: str, path_pattern: str = "") -> list[httpx.Request]:
        return [
            r for r in self.requests
            if r.method == method and re.fullmatch(path_pattern or ".*", r.url.path)
        ]

    def add_log(self, message: str, *, ts: float, function: str = "hello", stream: str = "stdout",
                level: str | None = None, request_id: str | None = "req_abc123") -> LogRecord:
        record = LogRecord(ts=ts, tenant="default", function=function, version=3,
                           request_id=request_id, stream=stream, level=level, message=message)
        self.logs.append(record)
        return record

    # -- routing --------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/v1/health":
            return httpx.Response(200, json={"status": "ok", "version": "0.1.0"})
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "unauthorized", "missing or invalid API token")
        tenant = request.headers.get("x-hyac-tenant", "default")
        try:
            return self._route(request, path, tenant)
        except pydantic.ValidationError as exc:
            return error(422, "invalid_input", str(exc).splitlines()[0])

    def _route(self, request: httpx.Request, path: str, tenant: str) -> httpx.Response:
        method = request.method
        if path == "/v1/agent" and method == "GET":
            return httpx.Response(200, json={
                "running": True, "url": URL, "version": "0.1.0", "pid": 4242,
                "sandbox": "fake", "data_dir": "/nowhere", "extra": {},
            })
        if path == "/v1/functions" and method == "GET":
            return httpx.Response(200, json=[s.model_dump() for s in self._summaries(tenant)])
        if path == "/v1/logs" and method == "GET":
            return httpx.Response(200, json=[r.model_dump() for r in self._logs(request)])
        if path == "/v1/logs/stream" and method == "GET":
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  content=self._stream_body())
        match = re.fullmatch(r"/v1/functions/([^/]+)(/\w+)?", path)
        if not match:
            return error(404, "not_found", f"no route {method} {path}")
        name, sub = match.group(1), match.group(2) or ""
        found = self.versions.get((tenant, name))
        if method == "PUT" and not sub:
            return self._deploy(tenant, name, DeployRequest.model_validate_json(request.content))
        if method == "POST" and sub == "/invoke":  # any name: tests decide via on_invoke
            invoke = InvokeRequest.model_validate_json(request.content)
            answer = (self.on_invoke or _echo)(name, invoke)
            if isinstance(answer, httpx.Response):
                return answer
            return httpx.Response(200, json=answer.model_dump())
        if found is None:
            return error(404, "not_found", f"function {name!r} not found")
        if method == "DELETE" and not sub:
            del self.versions[(tenant, name)]
            return httpx.Response(200, json={"deleted": name})
        if method == "GET" and sub == "/versions":
            return httpx.Response(200, json=[v.model_dump() for v in found])
        if method == "POST" and sub == "/rollback":
            wanted = RollbackRequest.model_validate_json(request.content).version
            if not any(v.version == wanted for v in found):
                return error(404, "not_found", f"function {name!r} has no version {wanted}")
            for v in found:
                v.active = v.version == wanted
            target = next(v for v in found if v.active)
            return httpx.Response(200, json={
                "name": name, "version": wanted, "sha256": target.sha256, "created": False,
                "active_version": wanted,
            })
        return error(404, "not_found", f"no route {method} {path}")

    def _deploy(self, tenant: str, name: str, body: DeployRequest) -> httpx.Response:
        digest = hashlib.sha256(
            json.dumps([body.entry, body.files_b64, body.config.model_dump()], sort_keys=True)
            .encode()
        ).hexdigest()
        found = self.versions.setdefault((tenant, name), [])
        active = next((v for v in found if v.active), None)
        if active is not None and active.sha256 == digest:
            result = {"name": name, "version": active.version, "sha256": digest,
                      "created": False, "active_version": active.version}
            return httpx.Response(200, json=result)
        for v in found:
            v.active = False
        number = len(found) + 1
        found.append(VersionInfo(
            version=number, sha256=digest, runtime=body.config.runtime,
            created_at=1_764_000_000.0 + number, active=True, entry=body.entry, config=body.config,
        ))
        return httpx.Response(201, json={"name": name, "version": number, "sha256": digest,
                                         "created": True, "active_version": number})

    def _summaries(self, tenant: str) -> list[FunctionSummary]:
        summaries = []
        for (owner, name), found in sorted(self.versions.items()):
            active = next(v for v in found if v.active)
            if owner == tenant:
                summaries.append(FunctionSummary(
                    name=name, active_version=active.version, versions=len(found),
                    runtime=active.runtime, sha256=active.sha256, updated_at=active.created_at,
                ))
        return summaries

    def _logs(self, request: httpx.Request) -> list[LogRecord]:
        params = request.url.params
        records = [r for r in self.logs if not params.get("function")
                   or r.function == params["function"]]
        if params.get("since"):
            records = [r for r in records if r.ts >= float(params["since"])]
        limit = int(params.get("limit", 200))
        return records[-limit:]

    def _stream_body(self) -> Iterator[bytes]:
        for item in self.stream:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, LogRecord):
                item = f"data: {item.model_dump_json()}\n\n"
            yield item.encode()


def _echo(name: str, request: InvokeRequest) -> InvokeResult:
    body = base64.b64decode(request.body_b64)
    return ok_result({"function": name, "method": request.method, "query": request.query,
                      "headers": request.headers, "body": body.decode("utf-8", "replace")})
