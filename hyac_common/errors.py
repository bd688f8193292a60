"""One root exception for Hyac, with subclasses that carry an error code and HTTP status.

The agent turns any ``HyacError`` into ``{"error": {"code", "message"}}`` with its
status; the CLI turns it into a one-line message and a non-zero exit.
"""

from __future__ import annotations

from typing import Any


class HyacError(Exception):
    """Base class of every error Hyac raises on purpose."""

    code = "error"
    status = 400
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return {"error": body}


class InvalidInput(HyacError):
    code = "invalid_input"
    status = 400
    exit_code = 2


class ManifestError(InvalidInput):
    code = "invalid_manifest"


class Unauthorized(HyacError):
    code = "unauthorized"
    status = 401


class Forbidden(HyacError):
    code = "forbidden"
    status = 403


class NotFound(HyacError):
    code = "not_found"
    status = 404


class Conflict(HyacError):
    code = "conflict"
    status = 409


class PayloadTooLarge(HyacError):
    code = "payload_too_large"
    status = 413


class FunctionTimeout(HyacError):
    code = "timeout"
    status = 504


class WorkerCrashed(HyacError):
    code = "worker_crashed"
    status = 502


class OutOfMemory(WorkerCrashed):
    """The worker hit its memory limit (killed by the kernel, or MemoryError)."""

    code = "out_of_memory"
    status = 502


class SandboxUnavailable(HyacError):
    code = "sandbox_unavailable"
    status = 503


class AgentUnreachable(HyacError):
    code = "agent_unreachable"
    status = 503
