"""Request body size limits, enforced while the body streams in (not after)."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """An HTTPException, so the route layer answers it as a 413 and never as a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """413 with a JSON error for bodies over the limit; deploys get a larger limit."""

    def __init__(self, app: ASGIApp, body_limit: int, bundle_limit: int) -> None:
        self.app = app
        self.body_limit = body_limit
        self.bundle_limit = bundle_limit

    def _limit(self, scope: Scope) -> int:
        path: str = scope.get("path", "")
        if scope.get("method") == "PUT" and path.startswith("/v1/functions/"):
            return self.bundle_limit * 4 // 3 + 64 * 1024  # base64 and JSON overhead
        if path.startswith("/v1/"):
            return self.body_limit * 4 // 3 + 64 * 1024
        return self.body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > limit:
                        await self._reject(send, limit)
                        return
                except ValueError:
                    pass
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
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
                await self._reject(send, limit)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        body = json.dumps(
            {"error": {"code": "payload_too_large", "message": f"request body is larger than {limit} bytes"}}
        ).encode()
        await send({
            "type": "http.response.start", "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})
