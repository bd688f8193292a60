"""Request body size limits, enforced while the body streams in (not after)."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hyac_common.errors import PayloadTooLarge


class BodyTooLarge(HTTPException):
    """An HTTPException, so the route layer answers it as a 413 and never as a 400."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class BodyLimitMiddleware:
    """413 with a JSON error for bodies over the limit; deploys get a larger limit."""

    def __init__(self, app: ASGIApp, body_limit: int, bundle_limit: int,
                 uploads: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.body_limit = body_limit
        self.bundle_limit = bundle_limit
        #: routes taking a file as their body: path -> (limit, what to say past it)
        self.uploads = uploads or {}

    def _limit(self, scope: Scope) -> tuple[int, str]:
        """The most bytes a request may send, and the limit to name when it sends more."""
        path: str = scope.get("path", "")
        if scope.get("method") == "PUT" and path.startswith("/v1/functions/"):
            # base64 and JSON overhead on top of the bundle itself
            return (self.bundle_limit * 4 // 3 + 64 * 1024,
                    f"the deploy bundle is larger than {_size(self.bundle_limit)} "
                    "(HYAC_MAX_BUNDLE_BYTES)")
        if path in self.uploads:
            return self.uploads[path]
        what = body_too_large(self.body_limit)
        if path.startswith("/v1/"):
            return self.body_limit * 4 // 3 + 64 * 1024, what
        return self.body_limit, what

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, problem = self._limit(scope)
        declared: int | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                    break
                if declared > limit:
                    await self._reject(send, problem)
                    return
            elif name == b"transfer-encoding":
                declared = None
                break
        if declared is not None:
            # The server frames the body by its Content-Length (h11, httptools): no more
            # than that can arrive, so no count of it is needed (a cost of every request).
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(problem)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send, problem)

    @staticmethod
    async def _reject(send: Send, message: str) -> None:
        body = json.dumps(PayloadTooLarge(message).to_json()).encode()
        await send({
            "type": "http.response.start", "status": PayloadTooLarge.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})


def body_too_large(limit: int) -> str:
    """The message for a request body over HYAC_MAX_BODY_BYTES."""
    return f"the request body is larger than {_size(limit)} (HYAC_MAX_BODY_BYTES)"


def _size(limit: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= factor and limit % (factor // 16) == 0:
            return f"{limit / factor:g} {unit}"
    return f"{limit} bytes"
