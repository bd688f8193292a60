"""Every error Hyac raises on purpose: one root, ``HyacError``, and one class per code.

The agent turns any ``HyacError`` into ``{"error": {"code", "message", ...}}`` with its
status; the CLI turns such an answer back into the same class (``from_json``) and that
into a one-line message and a non-zero exit. Each code is declared here once, with the
class that carries it; docs/api.md's table of codes is generated from these classes
(``python scripts/error_codes.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class HyacError(Exception):
    """An error without a more specific code."""

    code = "error"
    status = 400
    exit_code = 1
    #: raised by the CLI about its own situation; never in an answer of the agent
    local = False

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


# Mistakes of the caller (4xx) ---------------------------------------------------------


class InvalidInput(HyacError):
    """A value in the request is not acceptable (the message names it). A body that does
    not match the route's declared parameters or schema is 422 with this code."""

    code = "invalid_input"
    status = 400
    exit_code = 2


class ManifestError(InvalidInput):
    """hyac.toml is not valid (the message names the key and line)."""

    code = "invalid_manifest"


class InvalidBundle(InvalidInput):
    """A deploy's files are not a bundle the agent takes (a path, a size, a count)."""

    code = "invalid_bundle"


class FunctionSyntaxError(InvalidInput):
    """A deployed file does not compile; with ``path`` and ``line``."""

    code = "syntax_error"


class DatabaseError(InvalidInput):
    """A statement on the tenant's database failed (its message is the database's)."""

    code = "db_error"


class DependencyRefused(InvalidInput):
    """A requirement or lock names a source this agent does not install from."""

    code = "dependency_refused"


class DependencyConflict(InvalidInput):
    """The requirements cannot all be satisfied together."""

    code = "dependency_conflict"


class RefusedDestination(InvalidInput):
    """The callback URL points where the agent does not send callbacks."""

    code = "callback_refused"


class InvalidTemplate(InvalidInput):
    """A template's manifest or files are not acceptable (the message names the field or file)."""

    code = "invalid_template"


class AdvisoryRefused(InvalidInput):
    """An advisory file or archive is not one Hyac imports (malformed, too large, a path
    outside the archive); the message names the file and field."""

    code = "invalid_advisory"


class InvalidCidr(InvalidInput):
    """Not an IPv4 or IPv6 network (``10.0.0.0/8``, ``2001:db8::/32``) or address."""

    code = "invalid_cidr"


class DomainUnverified(InvalidInput):
    """A custom domain's ownership check found no proof yet (the message says what it
    looked for: the HTTP token or the DNS TXT record)."""

    code = "domain_unverified"


class InvalidCertificate(InvalidInput):
    """An uploaded TLS certificate does not serve the domain: its key does not match, it
    does not name the domain, it is expired, or its chain is broken (the message says)."""

    code = "invalid_certificate"


class ImageBuildError(HyacError):
    """Building a runtime's container image failed."""

    code = "image_build_failed"


class Unauthorized(HyacError):
    """No token, or a bad, expired or revoked one."""

    code = "unauthorized"
    status = 401


class AccessRefused(Unauthorized):
    """The function's access mode needs a token, a function key or a signature the
    request did not carry (or carried wrong)."""

    code = "access_refused"


class Forbidden(HyacError):
    """The token's role may not do this (whether or not the tenant exists)."""

    code = "forbidden"
    status = 403


class IpDenied(Forbidden):
    """The client's address matches a deny rule (the answer names the rule), or is in
    none of the allow rules of a list that has some."""

    code = "ip_denied"


class CorsRefused(Forbidden):
    """A CORS preflight from an origin, or for a method or header, the function does
    not allow."""

    code = "cors_refused"


class NotFound(HyacError):
    """No such route, or nothing of that name in the tenant."""

    code = "not_found"
    status = 404


class MethodNotAllowed(HyacError):
    """The path does not take this method; ``allowed`` lists those it takes."""

    code = "method_not_allowed"
    status = 405


class Conflict(HyacError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


class RuntimeChanged(Conflict):
    """A deploy would move a function to another language; ``--force`` does it."""

    code = "runtime_changed"


class OwnedByAnotherProject(Conflict):
    """A deploy would take over a function another project deployed; with ``owner``."""

    code = "owned_by_another_project"


class TemplateNameTaken(Conflict):
    """Another publisher's template (or a built-in) already has this name, or one too like it."""

    code = "template_name_taken"
    status = 409


class TemplateVersionExists(Conflict):
    """This version of the template is published already: versions never change."""

    code = "template_version_exists"
    status = 409


class RequestCancelled(HyacError):
    """The request's run was stopped from outside (its task was cancelled or handed back)."""

    code = "cancelled"
    status = 409


class PayloadTooLarge(HyacError):
    """The body is larger than the agent takes."""

    code = "payload_too_large"
    status = 413


class InstallFailed(HyacError):
    """Installing the dependencies failed (network, a missing package, a build step)."""

    code = "dependency_install_failed"
    status = 422


class VulnerableDependencies(HyacError):
    """The tenant's vulnerability policy blocks the deploy: ``advisories`` (id, package,
    version, severity, first fixed version) and ``unknown`` packages."""

    code = "vulnerable_dependencies"
    status = 422


class QuotaExceeded(HyacError):
    """A tenant quota is used up: with ``quota``, ``limit`` and ``use``. 429 for rates and
    concurrency, 403 or 413 for deploy and storage limits."""

    code = "quota_exceeded"
    status = 429


class RateLimited(HyacError):
    """This client address sent the function more requests than its rate limit allows;
    ``Retry-After`` says when to try again."""

    code = "rate_limited"
    status = 429


class TooManyStreams(HyacError):
    """The caller has as many log and task streams open as a user may
    (``HYAC_STREAMS_PER_USER``); close one first."""

    code = "too_many_streams"
    status = 429


class HttpError(HyacError):
    """Any other HTTP error of the web server itself (its status as sent)."""

    code = "http_error"


# Failures of the platform or of the function (5xx) --------------------------------------


class InternalError(HyacError):
    """A bug in the agent (its log has the traceback)."""

    code = "internal"
    status = 500


class FunctionLoadError(HyacError):
    """The function's module failed to load in the worker (syntax error, no main, …)."""

    code = "function_load_error"
    status = 500


class InvocationFailed(HyacError):
    """The function raised; with its ``type`` and ``traceback`` (and, for a nested call,
    the callee's ``function`` and ``request_id``)."""

    code = "function_error"
    status = 500


class OutputTooLarge(HyacError):
    """The function returned more than the agent passes on."""

    code = "output_too_large"
    status = 502


class BadFunctionResponse(HyacError):
    """The function answered the gateway with a response no HTTP server may send: a
    header name or value that is not valid HTTP (a line break, a NUL, text beyond
    Latin-1), or one that would reach into the console sharing the agent's origin (its
    cookie set, or Clear-Site-Data)."""

    code = "bad_function_response"
    status = 502


class WorkerCrashed(HyacError):
    """The worker running the function died."""

    code = "worker_crashed"
    status = 502


class OutOfMemory(WorkerCrashed):
    """The worker hit its memory limit (killed by the kernel, or MemoryError)."""

    code = "out_of_memory"
    status = 502


class IntegrationFailed(HyacError):
    """An integration did not work with its settings when tried (an SMTP server or an
    S3-compatible service unreachable, credentials refused, no such bucket): the message
    says what failed. ``set`` saves nothing when the new settings fail so."""

    code = "integration_failed"
    status = 422


class MailFailed(HyacError):
    """The SMTP server could not be reached in time, or refused the agent or the message."""

    code = "mail_failed"
    status = 502


class SandboxUnavailable(HyacError):
    """No sandbox could be started for the function."""

    code = "sandbox_unavailable"
    status = 503


class AnalysisTimeout(HyacError):
    """The editor's analysis of a source (completion, hover, diagnostics) took longer than
    its time cap, or every analysis slot is busy."""

    code = "analysis_timeout"
    status = 503


class StorageUnavailable(HyacError):
    """The object storage service (an S3-compatible one) could not be reached, refused the
    agent's credentials, or has no such bucket: the message says which."""

    code = "storage_unavailable"
    status = 503


class MailNotConfigured(HyacError):
    """This agent has no SMTP server to send through."""

    code = "mail_not_configured"
    status = 503


class FunctionTimeout(HyacError):
    """The function ran past its timeout; only its own request fails."""

    code = "timeout"
    status = 504


class CallDepthExceeded(HyacError):
    """``context.invoke`` calls nested deeper than 8 (runaway recursion)."""

    code = "call_depth_exceeded"
    status = 508


# The CLI's own -----------------------------------------------------------------------


class AgentUnreachable(HyacError):
    """No agent answers where the CLI looks for one."""

    code = "agent_unreachable"
    status = 503
    local = True


class ConnectionLost(AgentUnreachable):
    """The agent went away in the middle of an answer (it may be restarting)."""

    code = "connection_lost"


class UsageError(HyacError):
    """The command line is not one the command takes."""

    code = "usage_error"
    exit_code = 2
    local = True


class LocalOSError(HyacError):
    """A file or directory on the CLI's machine could not be read or written."""

    code = "os_error"
    local = True


class UnexpectedAnswer(HyacError):
    """The agent answered with something the CLI cannot read."""

    code = "unexpected_answer"
    local = True


def _declared() -> dict[str, type[HyacError]]:
    by_code: dict[str, type[HyacError]] = {}
    for value in list(globals().values()):
        if isinstance(value, type) and issubclass(value, HyacError):
            if value.code in by_code:
                raise TypeError(f"error code {value.code!r} is declared twice")
            by_code[value.code] = value
    return by_code


#: the class for an answer whose code this version does not know, by HTTP status
_BY_STATUS: dict[int, type[HyacError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    502: WorkerCrashed,
    503: SandboxUnavailable,
    504: FunctionTimeout,
}


def from_json(body: Mapping[str, Any], status: int | None = None) -> HyacError:
    """The error an answer of the agent stands for: ``body`` is the answer
    (``{"error": {...}}``) or its ``error`` object, ``status`` its HTTP status.

    The class is the one declared for the code; a code this version does not know takes
    the class for the status and keeps its own code. The answer's further fields become
    the error's details, and ``status`` (when given) its status."""
    inner = body.get("error")
    error: Mapping[str, Any] = inner if isinstance(inner, Mapping) else body
    code = error.get("code")
    code = code if isinstance(code, str) and code else None
    message = str(error.get("message") or f"the agent answered HTTP {status}")
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    known = BY_CODE.get(code or "")
    cls = known if known is not None and not known.local else None
    if cls is None:
        cls = _BY_STATUS.get(status or 0, HyacError)
    if cls is InvalidInput and status is not None and status >= 500:
        cls = HyacError  # a platform failure, whatever the code: not the caller's mistake
    result = cls(message, code=code, **details)
    if status is not None:
        result.status = status
    return result


# docs/api.md ---------------------------------------------------------------------------

TABLE_START = "<!-- error codes: generated from hyac_common/errors.py by scripts/error_codes.py -->"
TABLE_END = "<!-- end of error codes -->"


def markdown_table() -> str:
    """The table of every code, as docs/api.md shows it."""
    rows = ["| code | status | meaning |", "|---|---|---|"]
    local = ["", "The CLI's own codes (its `--json` output; never in an answer of the agent):", "",
             "| code | exit | meaning |", "|---|---|---|"]
    for cls in BY_CODE.values():
        meaning = " ".join((cls.__doc__ or "").split()).replace("``", "`")
        if cls.local:
            local.append(f"| `{cls.code}` | {cls.exit_code} | {meaning} |")
        else:
            rows.append(f"| `{cls.code}` | {cls.status} | {meaning} |")
    return "\n".join(rows + local) + "\n"


def with_table(document: str) -> str:
    """``document`` with the text between the table's markers replaced by the table."""
    head, start, rest = document.partition(TABLE_START)
    _old, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"the document has no {TABLE_START!r} ... {TABLE_END!r} section")
    return f"{head}{TABLE_START}\n{markdown_table()}{TABLE_END}{tail}"


#: every error class by its code, the CLI's own included (built once all are declared)
BY_CODE: dict[str, type[HyacError]] = _declared()
