"""``/console/``: the page, its static files, and the session endpoints.

``POST /console/session`` trades a one-time code (from ``hyac console``) or a pasted
token for a session cookie; ``GET`` tells the page who it is and its CSRF token (a
same-origin read: another site can neither read it nor send the cookie); ``DELETE``
signs out. Sign-ins, failed ones too, and sign-outs are audited.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hyac_agent.console.auth import audit, identity_of, principal_of
from hyac_agent.console.middleware import cookie_secret
from hyac_agent.console.sessions import COOKIE, CSRF_HEADER, IDLE_TTL, ConsoleSessions, csrf_matches
from hyac_common.errors import Forbidden, HyacError, InvalidInput, Unauthorized

if TYPE_CHECKING:
    from hyac_agent.core import Agent

STATIC = Path(__file__).parent / "static"
MAX_BODY = 8192


def console_pages(agent: Agent, sessions: ConsoleSessions) -> Starlette:
    def client_of(request: Request) -> str | None:
        return request.client.host if request.client else None

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def sign_in(request: Request) -> Response:
        # Only the console's own page signs in: another site must not log a browser in
        # as its owner's account (a form cannot send JSON, and browsers name the origin).
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise InvalidInput("sign in with a JSON body (Content-Type: application/json)")
        origin = request.headers.get("origin")
        if request.headers.get("sec-fetch-site") == "cross-site" or (
                origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}"):
            raise Forbidden("console sign-in is only taken from the console's own page")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise InvalidInput("the sign-in request is too large")
        try:
            data: Any = json.loads(body or b"{}")
        except ValueError:
            raise InvalidInput("the sign-in request must be JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("code") or data.get("token"), str):
            raise InvalidInput('send {"code": "..."} or {"token": "..."}')
        how = "code" if data.get("code") else "token"
        try:
            if how == "code":
                identity = sessions.redeem_code(data["code"])
                principal = await principal_of(agent, identity)
            else:
                identity, principal = await identity_of(agent, data["token"].strip())
        except Unauthorized:
            await audit(agent, None, "console.login", how, 401, client_of(request))
            raise
        secret, session = sessions.open(identity, client_of(request))
        await audit(agent, principal, "console.login", how, 200, client_of(request))
        response = JSONResponse({"csrf": session.csrf, "session": session.id})
        response.set_cookie(
            COOKIE, secret, max_age=int(IDLE_TTL), path="/", httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def current(request: Request) -> Response:
        secret = cookie_secret(request.scope)
        session = sessions.find(secret) if secret else None
        if session is None:
            raise Unauthorized("not signed in to the console")
        try:
            principal = await principal_of(agent, session.identity)
        except Unauthorized:
            sessions.close(session.id)
            raise
        if request.method == "DELETE":
            if not csrf_matches(session, request.headers.get(CSRF_HEADER)):
                raise Forbidden("signing out needs the session's X-Hyac-CSRF header")
            sessions.close(session.id)
            await audit(agent, principal, "console.logout", session.id, 200, client_of(request))
            response = JSONResponse({"signed_out": True})
            response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
            return response
        return JSONResponse(
            {"csrf": session.csrf, "session": session.id, "user": principal.name,
             "kind": principal.kind, "owner": principal.owner and principal.scope is None,
             "scope": principal.scope, "roles": principal.roles},
            headers={"Cache-Control": "no-store"},
        )

    async def to_index(_request: Request) -> Response:
        return RedirectResponse("/console/", status_code=308)

    async def hyac_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HyacError)
        return JSONResponse(exc.to_json(), status_code=exc.status,
                            headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/console", to_index),
            Route("/console/", index),
            Route("/console/session", sign_in, methods=["POST"]),
            Route("/console/session", current, methods=["GET", "DELETE"]),
            Mount("/console/static", StaticFiles(directory=STATIC, follow_symlink=False)),
        ],
        exception_handlers={HyacError: hyac_error},
    )
