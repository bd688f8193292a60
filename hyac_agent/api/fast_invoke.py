"""``POST /v1/functions/{name}/invoke`` ahead of FastAPI's middleware, routing and
dependency solving, for the plain shape of the request: how async invokes (each one a
background task) and the CLI's invokes arrive.

Nothing is decided here that the route does not decide: the caller and the tenant come
from the same dependency functions (``deps._tenant``), the body is validated by the same
model, and the route's own function runs. Any other shape (no bearer token, another
content type, other query parameters, a body the model refuses) goes on to FastAPI
untouched (the body read here is handed on), so its answers, 422s included, stay
FastAPI's.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hyac_agent.api import routes_functions
from hyac_agent.api.deps import _role_for, _tenant
from hyac_agent.api.errors import unexpected_error
from hyac_agent.api.limits import BodyTooLarge
from hyac_common.errors import HyacError
from hyac_common.wire import InvokeRequest

_PREFIX = "/v1/functions/"
_SUFFIX = "/invoke"
#: the query strings taken here, and the mode each one asks for
_QUERIES = {b"": "auto", b"mode=auto": "auto", b"mode=sync": "sync", b"mode=async": "async"}


def _plain(scope: Scope) -> tuple[str, str] | None:
    """(function name, mode) when the request has the shape taken here, else None."""
    path: str = scope["path"]
    if scope["method"] != "POST" or not path.startswith(_PREFIX) or not path.endswith(_SUFFIX):
        return None
    name = path[len(_PREFIX):-len(_SUFFIX)]
    mode = _QUERIES.get(scope.get("query_string", b""))
    if not name or "/" in name or mode is None:
        return None
    bearer = json_body = False
    for key, value in scope["headers"]:
        if key == b"authorization":
            bearer = value[:7].lower() == b"bearer "
        elif key == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
    return (name, mode) if bearer and json_body else None


class InvokeFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = _plain(scope) if scope["type"] == "http" else None
        if plain is None:
            await self.app(scope, receive, send)
            return
        name, mode = plain
        request = Request(scope, receive)
        try:
            body = await request.body()  # BodyTooLarge goes up to the body limit
        except ClientDisconnect:
            return
        try:
            invoke = InvokeRequest.model_validate(json.loads(body))
        except (ValueError, ValidationError):  # answered by FastAPI, as ever
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            tenant = await _tenant(request, request.headers.get("x-hyac-tenant"),
                                   _role_for(request))
            result = await routes_functions.invoke(
                name, invoke, request, mode=mode,  # type: ignore[arg-type]
                callback_url=None, delay=0.0, tenant=tenant, agent=request.app.state.agent,
            )
            response: Response = result if isinstance(result, Response) else \
                JSONResponse(result.model_dump(mode="json", by_alias=True))
        except HyacError as exc:
            response = JSONResponse(exc.to_json(), status_code=exc.status)
        except BodyTooLarge:
            raise
        except Exception as exc:  # answered as FastAPI's error handler answers the API's
            response = unexpected_error(exc)
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read handed out first."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        message: Any = await receive()
        return message  # type: ignore[no-any-return]

    return replayed
