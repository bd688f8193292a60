"""Every error leaves the API as ``{"error": {"code", "message", ...}}`` with its status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from hyac_common.errors import (
    HttpError,
    HyacError,
    InternalError,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)

log = logging.getLogger("hyac.api")


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, one line for people, and further fields per code."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="stable and machine-readable, e.g. not_found, timeout")
    message: str = Field(description="one line for people")


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: what any route may answer besides its success: authentication, validation, the body
#: limit, the tenant's quotas and a bug are checked before or around every route. The
#: app declares them on every route (``FastAPI(responses=...)``), so the OpenAPI document
#: and clients generated from it state the real contract; the 422 replaces FastAPI's
#: ``{"detail": [...]}`` schema with the body really sent.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("invalid input"),
    401: _error("no token, or an unknown one"),
    403: _error("the token's role may not do this"),
    404: _error("no such route, or nothing of that name in the tenant"),
    405: _error("the route does not take this method"),
    409: _error("the request conflicts with the current state"),
    413: _error("the body is larger than the agent takes"),
    422: _error("the request does not match the declared parameters or body"),
    429: _error("a quota of the tenant is used up"),
    500: _error("a bug in the agent (see its log)"),
}
#: what running a function may answer besides (the gateway, invoke and its neighbours)
INVOKE_ERRORS: dict[int | str, dict[str, Any]] = {
    502: _error("the worker crashed or ran out of memory"),
    503: _error("no sandbox could be started"),
    504: _error("the function ran past its timeout"),
}


def error_response(status: int, code: str, message: str, **details: object) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **details}}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HyacError)
    async def hyac_error(_request: Request, exc: HyacError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(request, err) for err in exc.errors()[:5]]
        # The same code as any other invalid input; the status says it failed the schema.
        return error_response(422, InvalidInput.code, "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        known = (Unauthorized, NotFound, MethodNotAllowed, PayloadTooLarge)
        code = next((cls.code for cls in known if cls.status == exc.status_code), HttpError.code)
        return JSONResponse(
            {"error": {"code": code, "message": str(exc.detail)}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error(exc)


def unexpected_error(exc: Exception) -> JSONResponse:
    """A bug's answer: logged with its traceback here, never shown to the caller."""
    log.exception("unexpected error", exc_info=exc)
    return error_response(InternalError.status, InternalError.code,
                          "internal error; see the agent's log")


def _problem(request: Request, err: Any) -> str:
    """One validation error in words; the body as a whole gets a plainer message."""
    loc = tuple(err.get("loc", ()))
    kind = err.get("type")
    if kind == "json_invalid":
        reason = (err.get("ctx") or {}).get("error") or "invalid JSON"
        at = f" (at character {loc[1]})" if len(loc) > 1 else ""
        return f"the request body is not valid JSON: {reason}{at}"
    if loc == ("body",):
        content_type = request.headers.get("content-type", "")
        hint = "" if "json" in content_type else " with Content-Type: application/json"
        if kind == "missing":
            return f"the request needs a JSON object as its body{hint}"
        return f"the request body must be a JSON object{hint}"
    where = ".".join(str(p) for p in loc if p != "body")
    return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))
