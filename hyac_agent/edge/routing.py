"""Routing by ``Host``: a request to a bound domain runs the domain's function.

The API, the console and ``/metrics`` stay what they are on every name (a tenant that
bound the agent's own API name could otherwise read the calls meant for it); every
other path of a bound domain is the function's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from hyac_agent.edge.acme import CHALLENGE_PATH as ACME_CHALLENGE_PATH
from hyac_agent.edge.cors import METHODS
from hyac_agent.edge.domains import CHALLENGE_PATH, challenge_answer
from hyac_agent.edge.hosts import request_host
from hyac_agent.edge.store import Domain
from hyac_common.errors import HyacError, NotFound

Run = Callable[..., Awaitable[Response]]


def target(domain: Domain, path: str) -> tuple[str, str] | None:
    """(function, the function's path without its leading '/') for ``path`` on
    ``domain``, or None when the path is not the domain's."""
    if domain.function is None:
        function, _, rest = path.lstrip("/").partition("/")
        return (function, rest) if function else None
    prefix = domain.path_prefix.rstrip("/")
    if prefix and path != prefix and not path.startswith(prefix + "/"):
        return None
    return domain.function, path[len(prefix):].lstrip("/")


async def serve_domain(scope: Scope, receive: Receive, send: Send, run: Run,
                       api_prefixes: tuple[str, ...]) -> bool:
    """Answer a request whose ``Host`` is a bound domain (True), or leave it (False)."""
    if scope["type"] != "http" or scope["method"] not in METHODS:
        return False
    edge = getattr(scope["app"].state, "edge", None)
    path: str = scope.get("path", "")
    if edge is None or path.startswith((*api_prefixes, "/metrics")):
        return False
    if path.startswith(ACME_CHALLENGE_PATH):  # an ACME server checking an order of ours
        answer = await edge.acme.answer(path)
        if answer is not None:
            await PlainTextResponse(answer)(scope, receive, send)
            return True
    view = await edge.view()  # a cluster's other agents' changes, within the refresh time
    if not view.snap.claims:
        return False
    host = request_host(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
    if not host:
        return False
    domain = view.snap.domains.get(host)
    if domain is None:
        # a pending claim's ownership check: answered here, whoever asks
        token = challenge_answer(edge, host, path) if path.startswith(CHALLENGE_PATH) else None
        if token is None:
            return False
        await PlainTextResponse(token)(scope, receive, send)
        return True
    redirect = None if path.startswith(("/.well-known/",)) else \
        edge.certificates.redirect(host, scope)
    if redirect is not None:  # the domain has a certificate: plain HTTP goes to HTTPS
        await RedirectResponse(redirect, status_code=308)(scope, receive, send)
        return True
    response = await _answer(scope, receive, domain, path, run)
    await response(scope, receive, send)
    return True


async def _answer(scope: Scope, receive: Receive, domain: Domain, path: str, run: Run) -> Response:
    routed = target(domain, path)
    if routed is None:
        return _error(NotFound(f"nothing at {path} on {domain.host}"))
    function, rest = routed
    request = Request(scope, receive)
    try:
        return await run(request, domain.tenant, function, rest, scope["app"].state.agent,
                         domain.host)
    except HyacError as exc:
        return _error(exc)


def _error(exc: HyacError) -> Response:
    return JSONResponse(exc.to_json(), status_code=exc.status)
