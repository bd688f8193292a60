"""The console's place in front of the agent.

``/console/…`` is answered by the console's own pages (before the gateway, which would
read ``console`` as a tenant), every answer with the security headers below. A ``/v1``
call with no Authorization header but a console cookie acts as the session's principal;
one that changes anything must also carry the session's CSRF token in ``X-Hyac-CSRF``
(the cookie is SameSite=Strict as well: two locks, either one enough).
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hyac_agent.console.auth import principal_of
from hyac_agent.console.sessions import COOKIE, CSRF_HEADER, ConsoleSessions, csrf_matches
from hyac_common.errors import Forbidden, HyacError, Unauthorized

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: answered to anyone: a stale cookie must not turn them into a 401
PUBLIC = {"/v1/health"}


def cookie_secret(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is no session
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


class ConsoleMiddleware:
    def __init__(self, app: ASGIApp, sessions: ConsoleSessions, pages: ASGIApp) -> None:
        self.app = app
        self.sessions = sessions
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path == "/console" or path.startswith("/console/"):
            await self.pages(scope, receive, secured(send))
            return
        if path.startswith("/v1/") and path not in PUBLIC and header(scope, b"authorization") is None:
            secret = cookie_secret(scope)
            if secret is not None:
                try:
                    await self._as_session(scope, secret)
                except HyacError as exc:
                    await JSONResponse(exc.to_json(), status_code=exc.status)(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _as_session(self, scope: Scope, secret: str) -> None:
        session = self.sessions.find(secret)
        if session is None:
            raise Unauthorized("the console session ended (signed out, revoked or idle); "
                               "sign in again")
        agent = scope["app"].state.agent
        try:
            principal = await principal_of(agent, session.identity)
        except Unauthorized:
            self.sessions.close(session.id)  # its token is gone: so is the session
            raise
        if scope["method"] not in SAFE_METHODS and \
                not csrf_matches(session, header(scope, CSRF_HEADER.encode())):
            raise Forbidden("a console change needs the session's X-Hyac-CSRF header")
        state = scope.setdefault("state", {})
        state["principal"] = principal  # what get_principal answers for this request
        state["console_session"] = session.id


def secured(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS.items():
                headers[name] = value
        await send(message)

    return send_with_headers
