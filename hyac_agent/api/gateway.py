"""The gateway: plain HTTP on ``/{tenant}/{function}[/{path}]`` runs the function."""

from __future__ import annotations

import base64
import json
import re

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from hyac_agent.api.deps import get_agent
from hyac_agent.api.errors import unexpected_error
from hyac_agent.api.limits import BodyTooLarge
from hyac_agent.console.sessions import COOKIE as CONSOLE_COOKIE
from hyac_agent.core import Agent
from hyac_agent.edge.install import Verdict, admit
from hyac_agent.edge.routing import serve_domain
from hyac_common.errors import (
    BadFunctionResponse,
    FunctionLoadError,
    HyacError,
    InvocationFailed,
    MethodNotAllowed,
    NotFound,
)
from hyac_common.names import validate_name
from hyac_common.wire import InvokeRequest

router = APIRouter(tags=["gateway"])
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# Hop-by-hop and framing headers are the server's business, not the function's.
_DROP = {"content-length", "transfer-encoding", "connection", "keep-alive", "server", "date"}


async def _run(request: Request, tenant: str, function: str, path: str, agent: Agent,
               domain: str | None = None) -> Response:
    validate_name(tenant, "tenant")
    # IP rules, access mode, rate limit, CORS: decided before any worker is touched
    verdict = await admit(request, tenant, function, domain)
    if verdict.response is not None:
        return verdict.response
    cookie = verdict.headers.get("cookie")
    if cookie is not None and CONSOLE_COOKIE in cookie:
        _without_console_cookie(verdict.headers, cookie)
    response = verdict.finish(await _invoke(request, tenant, function, path, agent, verdict))
    if domain is None:
        if "clear-site-data" in response.headers:  # the console's session and storage too
            return _bad_response(function, response.headers.get("x-hyac-request-id", ""),
                                 "it clears the site's data, which is the console's too")
        # On the agent's own origin, which the console and the API share with every
        # tenant's functions, a function's page runs in an opaque origin of its own: its
        # scripts run, but can neither send the console's session cookie with a request
        # nor read an answer of the API's (a function that serves a web app needing
        # cookies or storage of its own gets a custom domain: its own origin).
        response.raw_headers.append(_SANDBOX)
    return response


#: CSP's sandbox without allow-same-origin: the page's origin is opaque (an extra CSP
#: header of a function's own still applies too: browsers enforce every policy given)
_SANDBOX = (b"content-security-policy",
            b"sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads")


def _without_console_cookie(headers: dict[str, str], cookie: str) -> None:
    """The request's cookies as the function gets them: never the console's session
    (a browser signed in to the console sends it with every request to this origin)."""
    kept = [pair for pair in cookie.split(";")
            if pair.split("=", 1)[0].strip() != CONSOLE_COOKIE]
    if kept:
        headers["cookie"] = ";".join(kept).strip()
    else:
        del headers["cookie"]


async def _invoke(request: Request, tenant: str, function: str, path: str, agent: Agent,
                  verdict: Verdict) -> Response:
    body = await request.body()
    # Every field is a str or a dict of them already: built without validation.
    invoke = InvokeRequest.model_construct(
        method=request.method,
        path="/" + path,
        query=dict(request.query_params) if request.scope.get("query_string") else {},
        headers=verdict.headers,
        body_b64=base64.b64encode(body).decode(),
    )
    client = verdict.client_ip
    version = await agent.functions.active_version(tenant, function)
    if version.config.background:
        from hyac_agent.api.routes_tasks import submitted

        return submitted(await agent.tasks.submit(tenant, function, invoke, client_ip=client))
    try:
        result = await agent.invoker.invoke(tenant, function, invoke, client_ip=client,
                                            version=version)
    except FunctionLoadError as exc:  # its message names the user's files: not for anyone
        return _function_error(exc.code, str(exc.details.get("type", "Error")),
                               f"function {function!r} failed to load",
                               str(exc.details.get("request_id", "")))
    if not result.ok:
        assert result.error is not None
        return _function_error(InvocationFailed.code, result.error.type, result.error.message,
                               result.request_id)
    headers = {k: v for k, v in result.headers.items() if k.lower() not in _DROP}
    headers["X-Hyac-Request-Id"] = result.request_id
    content = base64.b64decode(result.body_b64) if result.body_b64 else b""
    try:
        response = Response(content, status_code=result.status, headers=headers)
    except UnicodeEncodeError:  # a header value beyond Latin-1
        return _bad_response(function, result.request_id, "a header value is not Latin-1 text")
    # Set-Cookie holds one cookie a line: each is a header of its own (cookies are the
    # one header HTTP cannot join with commas).
    if any(name == b"set-cookie" and b"\n" in value for name, value in response.raw_headers):
        response.raw_headers[:] = [
            (name, line) for name, value in response.raw_headers
            for line in (value.split(b"\n") if name == b"set-cookie" else (value,))
            if line or name != b"set-cookie"]
    for name, value in response.raw_headers:
        if not _TOKEN.fullmatch(name) or _UNSAFE_VALUE.search(value):
            return _bad_response(function, result.request_id,
                                 f"header {name.decode('latin-1')!r} is not valid HTTP")
        if name == b"set-cookie" and \
                value.split(b"=", 1)[0].strip().decode("latin-1") == CONSOLE_COOKIE:
            return _bad_response(function, result.request_id,
                                 f"it sets the console's cookie ({CONSOLE_COOKIE})")
    return response


#: an HTTP header name (RFC 9110's token), and what no header value may hold
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _bad_response(function: str, request_id: str, why: str) -> Response:
    """What a proxy answers for an upstream's broken response: 502, and why, rather than
    a dropped connection (a header no HTTP server may send) or an error of the agent's."""
    return Response(
        json.dumps({"error": {
            "code": BadFunctionResponse.code,
            "message": f"function {function!r} answered a response the gateway cannot send: {why}",
            "request_id": request_id,
        }}),
        status_code=BadFunctionResponse.status,
        media_type="application/json",
        headers={"X-Hyac-Request-Id": request_id},
    )


def _function_error(code: str, kind: str, message: str, request_id: str) -> Response:
    """A function's failure as the gateway's callers, who may be anyone, see it: what
    failed and the request to look for in the logs; never a traceback or a file path
    (those are for the function's own developers: the invoke API and its logs). The
    message comes redacted from the invoke service."""
    return Response(
        json.dumps({"error": {
            "code": code, "type": kind, "message": message, "request_id": request_id,
        }}),
        status_code=500,
        media_type="application/json",
        headers={"X-Hyac-Request-Id": request_id},
    )


async def gateway_root(
    request: Request, tenant: str, function: str, agent: Agent = Depends(get_agent)
) -> Response:
    _not_an_api_route(request)
    return await _run(request, tenant, function, "", agent)


async def gateway_path(
    request: Request, tenant: str, function: str, path: str, agent: Agent = Depends(get_agent)
) -> Response:
    _not_an_api_route(request)
    return await _run(request, tenant, function, path, agent)


# A route per method: FastAPI gives a route one operation id, which a route with several
# methods would repeat in the OpenAPI document (once per method).
for _path, _endpoint in (("/{tenant}/{function}", gateway_root),
                         ("/{tenant}/{function}/{path:path}", gateway_path)):
    for _method in METHODS:
        router.add_api_route(_path, _endpoint, methods=[_method])


def _not_an_api_route(request: Request) -> None:
    """Under /v1/ the gateway only catches what no API route took: say so (404), or
    name the methods the path does take (405), rather than look for a function."""
    path = request.url.path
    if not path.startswith("/v1/"):
        return
    import re

    # The OpenAPI document lists every route with its methods, whatever shape the
    # router keeps them in.
    allowed: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]*?\\\}", "[^/]+", re.escape(template))
        if template.startswith("/v1/") and re.fullmatch(pattern, path):
            allowed |= {method.upper() for method in operations}
    where = f"{request.method} {path}"
    if allowed:
        raise MethodNotAllowed(
            f"{where}: method not allowed (allowed: {', '.join(sorted(allowed))})",
            allowed=sorted(allowed),
        )
    raise NotFound(f"no API route {where} (see /docs)")


# Paths FastAPI keeps for itself; everything else with two or more segments is the gateway.
_API_PREFIXES = ("/v1/", "/console/", "/docs", "/redoc", "/openapi.json")


class GatewayFastPath:
    """Serve gateway requests before FastAPI's routing and dependency solving.

    The routes above stay for the OpenAPI document; this middleware answers the same
    paths with the same handler, without the per-request routing cost (the gateway is
    matched after every /v1 route) on the hottest path of the agent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if await serve_domain(scope, receive, send, _run, _API_PREFIXES):  # custom domains
                return
        except BodyTooLarge:
            raise
        except Exception as exc:
            await unexpected_error(exc)(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(_API_PREFIXES) or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        parts = path.split("/", 3)  # "", tenant, function[, rest]
        if len(parts) < 3 or not parts[1] or not parts[2]:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        agent: Agent = scope["app"].state.agent
        try:
            response = await _run(request, parts[1], parts[2], parts[3] if len(parts) > 3 else "", agent)
        except HyacError as exc:
            response = JSONResponse(exc.to_json(), status_code=exc.status)
        except BodyTooLarge:
            raise  # answered by the body limit around this
        except Exception as exc:  # answered as FastAPI's error handler answers the API's
            response = unexpected_error(exc)
        await response(scope, receive, send)
