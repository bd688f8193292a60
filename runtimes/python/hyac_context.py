"""The context a Hyac function receives: its request, logger, env, kv, storage, mail and more.

A function is a file with ``def main(context)`` (or ``async def main(context)``). The names
in ``SHIM_NAMES`` are injected into the file's globals, so no import is needed; code that
prefers explicit imports can write ``from hyac_context import FunctionContext``.

This module is the single source of truth for the function API: the editor stubs are
generated from it, so every public signature is annotated and documented here. It is
stdlib-only and runs unchanged on Python 3.9 to 3.13.
"""

from __future__ import annotations

import binascii
import builtins
import codecs
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType

# Neither asyncio nor typing is imported at run time: a worker starts without them
# (see bootstrap.py), and an ``async`` method runs where asyncio already is.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable
    from concurrent.futures import Future
    from typing import Any, Protocol
else:
    Protocol = object

__all__ = [
    "SHIM_NAMES",
    "Attachment",
    "FunctionContext",
    "FunctionInfo",
    "Host",
    "HostCallError",
    "InvocationError",
    "InvokeResponse",
    "KV",
    "Database",
    "Logger",
    "Mail",
    "ObjectInfo",
    "Request",
    "Response",
    "Storage",
    "Task",
    "TenantSecrets",
    "Transaction",
]

SHIM_NAMES: tuple[str, ...] = ("FunctionContext", "Response")
"""Names injected into every function's globals, so ``main(context: FunctionContext)``
needs no import. Editor integrations read this same constant."""


class HostCallError(Exception):
    """A host call (``context.kv`` …) was refused or failed on the host side."""

    code: str
    """Machine-readable reason, e.g. ``"forbidden"``, ``"quota_exceeded"``, ``"sandbox_unavailable"``
    (every code: docs/api.md, "Error codes")."""
    message: str
    """Human-readable explanation from the host."""
    details: dict[str, Any]
    """Further fields the host sent, e.g. ``quota``, ``limit`` and ``use`` of a ``quota_exceeded``."""

    def __init__(self, code: str, message: str = "", details: Mapping[str, Any] | None = None) -> None:
        """Create the error from the host's ``code``, ``message`` and further fields."""
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.details = dict(details or {})

    def __str__(self) -> str:
        """Return ``"code: message"``."""
        return f"{self.code}: {self.message}" if self.message else self.code


class InvocationError(HostCallError):
    """The function called with ``context.invoke`` raised; its code is ``"function_error"``.

    Carries what the callee raised (``error_type``, ``message``, ``traceback``) and the
    request id its logs are filed under. An uncaught InvocationError fails the caller
    too; on Python 3.11+ its report then ends with the callee's traceback.
    """

    function: str
    """The name of the function that raised."""
    error_type: str
    """The callee's exception type, e.g. ``"ZeroDivisionError"``."""
    traceback: str
    """The callee's traceback, showing the callee's own files and line numbers."""
    request_id: str
    """The callee's request id (``hyac logs`` finds its log lines by it)."""

    def __init__(
        self,
        function: str,
        error_type: str,
        message: str = "",
        traceback: str = "",
        request_id: str = "",
    ) -> None:
        """Describe the callee's failure."""
        super().__init__("function_error", message)
        self.function = function
        self.error_type = error_type
        self.traceback = traceback
        self.request_id = request_id
        if traceback:  # printed after the caller's traceback by Python 3.11+
            self.__notes__ = [f"Raised in function {function!r} (request {request_id}):\n"
                              + traceback.rstrip("\n")]

    def __str__(self) -> str:
        """Return ``"function 'name' raised Type: message"``."""
        text = f"function {self.function!r} raised {self.error_type}"
        return f"{text}: {self.message}" if self.message else text


class Host(Protocol):
    """What the runtime provides to a context: host calls and log lines.

    The worker implements it; a test may pass its own object to build a context by hand.
    """

    def call(self, request_id: str, op: str, args: dict[str, Any]) -> Future[Any]:
        """Send host call ``op`` for a request; the future holds its value or a HostCallError."""
        ...

    def log(
        self, request_id: str | None, stream: str, message: str, level: str | None = None
    ) -> None:
        """Send one log line (without its newline) tagged with the request id."""
        ...

    def format_exception(self, exc: BaseException) -> str:
        """Format a traceback the way the user sees it (their own frames only)."""
        ...


class Request:
    """The HTTP request that triggered this invocation."""

    method: str
    """HTTP method in upper case, e.g. ``"GET"`` or ``"POST"``."""
    path: str
    """Path below the function's route, e.g. ``"/"`` or ``"/items/7"``."""
    query: dict[str, str]
    """Query string parameters."""
    headers: dict[str, str]
    """Request headers, with lower-cased names."""
    body: bytes
    """The raw request body."""
    client_ip: str
    """The caller's IP address."""
    id: str
    """The request id, also found in log lines and ``context.function.request_id``."""

    def __init__(
        self,
        method: str = "GET",
        path: str = "/",
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        client_ip: str = "",
        id: str = "",
    ) -> None:
        """Build a request; header names are lower-cased."""
        self.method = method.upper()
        self.path = path
        self.query = dict(query or {})
        self.headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        self.body = bytes(body)
        self.client_ip = client_ip
        self.id = id

    def json(self) -> Any:
        """Parse the body as JSON; an empty body gives ``None``.

        Raises ValueError with a clear message when the body is not valid JSON.
        """
        return _parse_json(self.body, "request body")

    def text(self) -> str:
        """Decode the body as text, using the content-type charset (UTF-8 by default)."""
        return self.body.decode(_charset(self.headers.get("content-type", "")), "replace")

    def __repr__(self) -> str:
        """Show method, path and id."""
        return f"<Request {self.method} {self.path} id={self.id!r}>"


class Response:
    """An HTTP response with an explicit status and headers.

    ``body`` may be bytes, str (sent as UTF-8 text), a dict or list (sent as JSON) or None.
    """

    status: int
    """HTTP status code, 100 to 599."""
    headers: dict[str, str]
    """Response headers; a content-type is added from the body type when missing. Set-Cookie
    holds one cookie per line (each is sent as a header of its own)."""
    body: Any
    """The body: bytes, str, dict, list or None."""

    def __init__(
        self, status: int = 200, headers: Mapping[str, str | Sequence[str]] | None = None,
        body: Any = b"",
    ) -> None:
        """Build a response; raises TypeError or ValueError at once on bad arguments.

        A header's value may be a list: ``{"set-cookie": ["a=1", "b=2"]}`` sends each cookie
        as a Set-Cookie header of its own; any other header's values are joined by ", ",
        as HTTP combines repeated headers.
        """
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(f"Response status must be an int, not {type(status).__name__}")
        if not 100 <= status <= 599:
            raise ValueError(f"Response status must be between 100 and 599, not {status}")
        if body is not None and not isinstance(body, _BODY_TYPES):
            raise TypeError(
                f"Response body must be bytes, str, dict, list or None, not {type(body).__name__}"
            )
        self.status = status
        self.headers = {}
        for name, value in (headers or {}).items():
            if not isinstance(name, str):
                raise TypeError(f"header names must be str, not {type(name).__name__}")
            self.headers[name] = _header_value(name, value)
        self.body = body

    def __repr__(self) -> str:
        """Show the status and body type."""
        return f"<Response {self.status} body={type(self.body).__name__}>"


def _header_value(name: str, value: Any) -> str:
    """A response header's value as it goes on the wire: a list or tuple gives one value
    per item, Set-Cookie's kept apart by a newline (no header value can hold one, and the
    agent sends each as a header of its own), any other header's joined by ", "."""
    if isinstance(value, (list, tuple)):
        return ("\n" if name.lower() == "set-cookie" else ", ").join(str(v) for v in value)
    return str(value)


class InvokeResponse:
    """What a function called with ``context.invoke`` answered.

    An error status the callee returned on purpose (``Response(404, ...)``) arrives here
    as it is; only an exception the callee raised becomes an InvocationError.
    """

    status: int
    """HTTP status code of the callee's response."""
    headers: dict[str, str]
    """The callee's response headers."""
    body: bytes
    """The raw response body."""
    ok: bool
    """Whether the status is below 400."""
    function: str
    """The name of the function that answered."""
    version: int
    """The version of the function that answered."""
    request_id: str
    """The callee's request id (``hyac logs`` finds its log lines by it)."""

    def __init__(
        self,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        function: str = "",
        version: int = 0,
        request_id: str = "",
    ) -> None:
        """Build a response as the host reported it."""
        self.status = status
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.body = bytes(body)
        self.ok = status < 400
        self.function = function
        self.version = version
        self.request_id = request_id

    def json(self) -> Any:
        """Parse the body as JSON; an empty body gives ``None``.

        Raises ValueError with a clear message when the body is not valid JSON.
        """
        return _parse_json(self.body, f"the response of {self.function!r}")

    def text(self) -> str:
        """Decode the body as text, using the content-type charset (UTF-8 by default)."""
        content_type = next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")
        return self.body.decode(_charset(content_type), "replace")

    def __repr__(self) -> str:
        """Show the function, status and request id."""
        return f"<InvokeResponse {self.function} {self.status} id={self.request_id!r}>"


class Logger:
    """Log lines for this invocation, tagged with its request id and level.

    Messages use %-formatting like the ``logging`` module: ``logger.info("hi %s", name)``.
    """

    def __init__(self, host: Host, request_id: str | None) -> None:
        """Create a logger sending its lines through ``host`` for ``request_id``."""
        self._host = host
        self._request_id = request_id

    def debug(self, msg: object, *args: object) -> None:
        """Log a message at DEBUG level."""
        self._emit("DEBUG", msg, args)

    def info(self, msg: object, *args: object) -> None:
        """Log a message at INFO level."""
        self._emit("INFO", msg, args)

    def warning(self, msg: object, *args: object) -> None:
        """Log a message at WARNING level."""
        self._emit("WARNING", msg, args)

    def error(self, msg: object, *args: object) -> None:
        """Log a message at ERROR level."""
        self._emit("ERROR", msg, args)

    def critical(self, msg: object, *args: object) -> None:
        """Log a message at CRITICAL level."""
        self._emit("CRITICAL", msg, args)

    def exception(self, msg: object, *args: object) -> None:
        """Log at ERROR level, followed by the traceback of the exception being handled."""
        exc = sys.exc_info()[1]
        self._emit("ERROR", msg, args, exc)

    def _emit(
        self, level: str, msg: object, args: tuple[object, ...], exc: BaseException | None = None
    ) -> None:
        text = str(msg)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError, KeyError) as err:
                text = f"{text} (could not format args {args!r}: {err})"
        if exc is not None:
            text = text + "\n" + self._host.format_exception(exc).rstrip("\n")
        for line in text.split("\n"):
            self._host.log(self._request_id, "logger", line, level)


class KV:
    """The tenant's key-value store: string keys, JSON-serialisable values.

    Each method is a host call. Use the ``a``-prefixed variants from ``async def main``
    so the event loop keeps serving other requests while waiting.
    """

    def __init__(self, host: Host, request_id: str) -> None:
        """Create a store client making host calls for ``request_id``."""
        self._host = host
        self._request_id = request_id

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default`` when there is none."""
        value = self._call("kv.get", {"key": _check_key(key)}).result()
        return default if value is None else value

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``; raises TypeError if it is not JSON-serialisable."""
        self._call("kv.set", {"key": _check_key(key), "value": _check_json(value)}).result()

    def delete(self, key: str) -> bool:
        """Delete ``key``; return True if it existed."""
        return bool(self._call("kv.delete", {"key": _check_key(key)}).result())

    def list(self, prefix: str = "", limit: int = 1000) -> builtins.list[str]:
        """Return up to ``limit`` keys starting with ``prefix``, in order."""
        return list(self._call("kv.list", _list_args(prefix, limit)).result())

    async def aget(self, key: str, default: Any = None) -> Any:
        """Async ``get``: return the value under ``key``, or ``default``."""
        value = await self._acall("kv.get", {"key": _check_key(key)})
        return default if value is None else value

    async def aset(self, key: str, value: Any) -> None:
        """Async ``set``: store ``value`` under ``key``."""
        await self._acall("kv.set", {"key": _check_key(key), "value": _check_json(value)})

    async def adelete(self, key: str) -> bool:
        """Async ``delete``: delete ``key``; return True if it existed."""
        return bool(await self._acall("kv.delete", {"key": _check_key(key)}))

    async def alist(self, prefix: str = "", limit: int = 1000) -> builtins.list[str]:
        """Async ``list``: return up to ``limit`` keys starting with ``prefix``."""
        return list(await self._acall("kv.list", _list_args(prefix, limit)))

    def _call(self, op: str, args: dict[str, Any]) -> Future[Any]:
        return self._host.call(self._request_id, op, args)

    async def _acall(self, op: str, args: dict[str, Any]) -> Any:
        return await _wrap_future(self._call(op, args))


class ObjectInfo:
    """One object of the tenant's storage, as ``context.storage`` describes it."""

    key: str
    """The object's key, e.g. ``"reports/2026-01.pdf"``."""
    size: int
    """Its size in bytes."""
    content_type: str
    """Its content type, e.g. ``"application/pdf"``."""
    sha256: str
    """The SHA-256 of its bytes, in hex."""
    updated_at: float
    """When it was last written, as a Unix timestamp in seconds."""

    def __init__(
        self,
        key: str = "",
        size: int = 0,
        content_type: str = "application/octet-stream",
        sha256: str = "",
        updated_at: float = 0.0,
    ) -> None:
        """Describe an object as the host reported it."""
        self.key = key
        self.size = size
        self.content_type = content_type
        self.sha256 = sha256
        self.updated_at = updated_at

    def __repr__(self) -> str:
        """Show key, size and content type."""
        return f"<ObjectInfo {self.key!r} {self.size} bytes {self.content_type}>"


class Storage:
    """The tenant's object storage: bytes under string keys, with ``/`` between folders.

    Keys are non-empty, at most 1024 bytes, without control characters, and do not start
    with ``/``. An object holds at most 8 MiB; keys and bytes count towards the tenant's
    storage quota. Each method is a host call: use the ``a``-prefixed variants from
    ``async def main``. Outside functions: ``hyac storage`` and ``/v1/storage``.
    """

    def __init__(self, host: Host | None, request_id: str) -> None:
        """Create a client making host calls for ``request_id``."""
        self._host = host
        self._request_id = request_id

    def put(self, key: str, data: bytes | str, content_type: str | None = None) -> ObjectInfo:
        """Store ``data`` under ``key``, replacing any object there; return its info.

        A str is stored as UTF-8 (content type ``text/plain; charset=utf-8`` unless given),
        bytes as ``application/octet-stream`` unless given.
        """
        return _object_info(self._call("storage.put", _put_args(key, data, content_type)).result())

    def get(self, key: str) -> bytes | None:
        """Return the bytes stored under ``key``, or None when there is no such object."""
        return _object_bytes(self._call("storage.get", {"key": _check_key(key, "storage")}).result())

    def stat(self, key: str) -> ObjectInfo | None:
        """Return what is known of the object under ``key`` (not its bytes), or None."""
        value = self._call("storage.stat", {"key": _check_key(key, "storage")}).result()
        return None if value is None else _object_info(value)

    def delete(self, key: str) -> bool:
        """Delete the object under ``key``; return True if it existed."""
        return bool(self._call("storage.delete", {"key": _check_key(key, "storage")}).result())

    def list(self, prefix: str = "", limit: int = 1000,
             start_after: str | None = None) -> builtins.list[ObjectInfo]:
        """Return up to ``limit`` (at most 1000) objects whose keys start with ``prefix``.

        They come in key order; ``list("photos/")`` lists a folder. For the next page,
        pass the last key you got as ``start_after``.
        """
        args = _page_args(prefix, limit, start_after)
        return [_object_info(v) for v in self._call("storage.list", args).result()]

    async def aput(self, key: str, data: bytes | str, content_type: str | None = None) -> ObjectInfo:
        """Async ``put``: store ``data`` under ``key``; return its info."""
        return _object_info(await self._acall("storage.put", _put_args(key, data, content_type)))

    async def aget(self, key: str) -> bytes | None:
        """Async ``get``: return the bytes under ``key``, or None."""
        return _object_bytes(await self._acall("storage.get", {"key": _check_key(key, "storage")}))

    async def astat(self, key: str) -> ObjectInfo | None:
        """Async ``stat``: return what is known of the object under ``key``, or None."""
        value = await self._acall("storage.stat", {"key": _check_key(key, "storage")})
        return None if value is None else _object_info(value)

    async def adelete(self, key: str) -> bool:
        """Async ``delete``: delete the object under ``key``; return True if it existed."""
        return bool(await self._acall("storage.delete", {"key": _check_key(key, "storage")}))

    async def alist(self, prefix: str = "", limit: int = 1000,
                    start_after: str | None = None) -> builtins.list[ObjectInfo]:
        """Async ``list``: up to ``limit`` objects under ``prefix``, after ``start_after``."""
        values = await self._acall("storage.list", _page_args(prefix, limit, start_after))
        return [_object_info(v) for v in values]

    def _call(self, op: str, args: dict[str, Any]) -> Future[Any]:
        if self._host is None:
            raise RuntimeError("storage needs the Hyac runtime (this context has no host)")
        return self._host.call(self._request_id, op, args)

    async def _acall(self, op: str, args: dict[str, Any]) -> Any:
        return await _wrap_future(self._call(op, args))


class Attachment:
    """A file attached to a message sent with ``context.mail.send``."""

    filename: str
    """The name the recipient sees, e.g. ``"report.pdf"`` (without ``/``)."""
    data: bytes
    """The file's bytes."""
    content_type: str | None
    """Its content type, e.g. ``"application/pdf"``; None guesses it from the filename."""

    def __init__(self, filename: str, data: bytes | str, content_type: str | None = None) -> None:
        """Attach ``data`` as ``filename``; a str is attached as UTF-8."""
        if not isinstance(filename, str):
            raise TypeError(f"attachment filename must be str, not {type(filename).__name__}")
        if not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"attachment data must be bytes or str, not {type(data).__name__}")
        self.filename = filename
        self.data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self.content_type = content_type

    def __repr__(self) -> str:
        """Show the filename, size and content type."""
        return f"<Attachment {self.filename!r} {len(self.data)} bytes {self.content_type or '(guessed)'}>"


class Mail:
    """Email, sent by the agent through its SMTP server: the function needs no network.

    Every message comes from the agent's sender address; a function chooses at most the
    display name (``from_name``). A message has at most 50 recipients (to, cc and bcc
    together) and 10 MiB of text, html and attachments; each sent message counts towards
    the tenant's ``mails_per_day`` quota. Failures raise HostCallError: ``invalid_input``
    (a bad address, a line break in a header, too large), ``quota_exceeded``,
    ``mail_not_configured`` (the agent has no ``HYAC_SMTP_URL``) or ``mail_failed`` (the
    SMTP server is unreachable or refused the message). From ``async def main`` use
    ``asend``.
    """

    def __init__(self, host: Host | None, request_id: str) -> None:
        """Create a client making host calls for ``request_id``."""
        self._host = host
        self._request_id = request_id

    def send(
        self,
        to: str | Sequence[str],
        subject: str,
        text: str | None = None,
        html: str | None = None,
        *,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
        reply_to: str | Sequence[str] | None = None,
        attachments: Sequence[Attachment | tuple[str, bytes | str]] | None = None,
        from_name: str | None = None,
    ) -> str:
        """Send one message; return its Message-ID once the SMTP server has taken it.

        Addresses are ``"ada@example.com"`` or ``"Ada Lovelace <ada@example.com>"``. Give
        ``text``, ``html`` or both (then mail programs choose). Attachments are
        ``Attachment(filename, data, content_type)`` objects or ``(filename, data)`` pairs.
        """
        args = _mail_args(to, subject, text, html, cc, bcc, reply_to, attachments, from_name)
        return str(self._send(args).result()["message_id"])

    async def asend(
        self,
        to: str | Sequence[str],
        subject: str,
        text: str | None = None,
        html: str | None = None,
        *,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
        reply_to: str | Sequence[str] | None = None,
        attachments: Sequence[Attachment | tuple[str, bytes | str]] | None = None,
        from_name: str | None = None,
    ) -> str:
        """Async ``send``: send one message; return its Message-ID."""
        args = _mail_args(to, subject, text, html, cc, bcc, reply_to, attachments, from_name)
        return str((await _wrap_future(self._send(args)))["message_id"])

    def _send(self, args: dict[str, Any]) -> Future[Any]:
        if self._host is None:
            raise RuntimeError("mail needs the Hyac runtime (this context has no host)")
        return self._host.call(self._request_id, "mail.send", args)


class TenantSecrets(Mapping[str, str]):
    """The tenant's secrets as a read-only mapping: ``context.secrets["API_KEY"]``.

    Values are fetched from the host on first use (one host call per name) and kept for
    the rest of the invocation. Set them with ``hyac secret set NAME``; their values are
    replaced by ``***`` in the function's logs.
    """

    def __init__(self, host: Host | None, request_id: str) -> None:
        """Create the mapping, fetching through ``host`` for ``request_id``."""
        self._host = host
        self._request_id = request_id
        self._values: dict[str, str] = {}
        self._names: builtins.list[str] | None = None

    def __getitem__(self, name: str) -> str:
        """The secret's value; KeyError if the tenant has no such secret."""
        if not isinstance(name, str):
            raise KeyError(name)
        if name not in self._values:
            value = self._call("secrets.get", {"name": name}).result()
            if value is None:
                raise KeyError(name)
            self._values[name] = str(value)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        """Iterate over the secret names."""
        return iter(self._list())

    def __len__(self) -> int:
        """How many secrets the tenant has."""
        return len(self._list())

    def __contains__(self, name: object) -> bool:
        """Whether the tenant has a secret called ``name``."""
        return isinstance(name, str) and name in self._list()

    def __repr__(self) -> str:
        """Show the names only, never the values."""
        return f"<TenantSecrets {self._list()!r}>"

    def _list(self) -> builtins.list[str]:
        if self._names is None:
            self._names = [str(n) for n in self._call("secrets.list", {}).result()]
        return self._names

    def _call(self, op: str, args: dict[str, Any]) -> Future[Any]:
        if self._host is None:
            raise RuntimeError("secrets need the Hyac runtime (this context has no host)")
        return self._host.call(self._request_id, op, args)


class Transaction:
    """An open database transaction: ``with context.db.transaction(): ...``.

    Commits when the block ends normally, rolls back when it raises. A transaction left
    open when the invocation ends is rolled back by the host.
    """

    def __init__(self, db: Database) -> None:
        """Wrap ``db``; the transaction begins when the ``with`` block is entered."""
        self._db = db

    def __enter__(self) -> Database:
        """Begin the transaction; return the database to run statements on."""
        self._db.begin()
        return self._db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Commit, or roll back if the block raised."""
        if exc_type is None:
            self._db.commit()
        else:
            self._db.rollback()

    async def __aenter__(self) -> Database:
        """Async ``__enter__``: begin the transaction."""
        await self._db.abegin()
        return self._db

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Async ``__exit__``: commit, or roll back if the block raised."""
        if exc_type is None:
            await self._db.acommit()
        else:
            await self._db.arollback()


class Database:
    """The tenant's own SQL database (SQLite by default; PostgreSQL on such agents).

    Placeholders are the database's own: ``?`` or ``:name`` on SQLite, ``%s`` or
    ``%(name)s`` on PostgreSQL. ``params`` is a list (positional) or a dict (named).
    Each statement is a host call and commits at once, unless a transaction is open:
    ``with context.db.transaction(): ...`` or ``begin()`` then ``commit()``/``rollback()``.
    BLOB values come back base64-encoded.
    """

    def __init__(self, host: Host | None, request_id: str) -> None:
        """Create a client making host calls for ``request_id``."""
        self._host = host
        self._request_id = request_id

    def execute(self, sql: str, params: Any = None) -> int:
        """Run one statement; return the number of rows it changed (-1 if unknown)."""
        return int(self._call("db.execute", _sql_args(sql, params)).result())

    def fetchall(self, sql: str, params: Any = None) -> builtins.list[dict[str, Any]]:
        """Run one query; return its rows as dicts (column name to value)."""
        return _rows(self._call("db.fetchall", _sql_args(sql, params)).result())

    def fetchone(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        """Run one query; return its first row, or None."""
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def begin(self) -> None:
        """Begin a transaction; statements run in it until ``commit`` or ``rollback``."""
        self._call("db.begin", {}).result()

    def commit(self) -> None:
        """Commit the open transaction."""
        self._call("db.commit", {}).result()

    def rollback(self) -> None:
        """Roll the open transaction back."""
        self._call("db.rollback", {}).result()

    def transaction(self) -> Transaction:
        """A transaction for a ``with`` (or ``async with``) block."""
        return Transaction(self)

    async def aexecute(self, sql: str, params: Any = None) -> int:
        """Async ``execute``: run one statement; return the rows it changed."""
        return int(await self._acall("db.execute", _sql_args(sql, params)))

    async def afetchall(self, sql: str, params: Any = None) -> builtins.list[dict[str, Any]]:
        """Async ``fetchall``: run one query; return its rows as dicts."""
        return _rows(await self._acall("db.fetchall", _sql_args(sql, params)))

    async def abegin(self) -> None:
        """Async ``begin``."""
        await self._acall("db.begin", {})

    async def acommit(self) -> None:
        """Async ``commit``."""
        await self._acall("db.commit", {})

    async def arollback(self) -> None:
        """Async ``rollback``."""
        await self._acall("db.rollback", {})

    def _call(self, op: str, args: dict[str, Any]) -> Future[Any]:
        if self._host is None:
            raise RuntimeError("the database needs the Hyac runtime (this context has no host)")
        return self._host.call(self._request_id, op, args)

    async def _acall(self, op: str, args: dict[str, Any]) -> Any:
        return await _wrap_future(self._call(op, args))


class FunctionInfo:
    """Which function and version is running, and for which request."""

    tenant: str
    """The tenant that owns the function."""
    name: str
    """The function's name."""
    version: int
    """The deployed version number."""
    sha256: str
    """The content hash of the deployed bundle."""
    runtime: str
    """The runtime, e.g. ``"python3.11"``."""
    request_id: str
    """The id of the request being served."""

    def __init__(
        self,
        tenant: str = "default",
        name: str = "",
        version: int = 0,
        sha256: str = "",
        runtime: str = "",
        request_id: str = "",
    ) -> None:
        """Describe a function version serving ``request_id``."""
        self.tenant = tenant
        self.name = name
        self.version = version
        self.sha256 = sha256
        self.runtime = runtime
        self.request_id = request_id

    def __repr__(self) -> str:
        """Show tenant, name and version."""
        return f"<FunctionInfo {self.tenant}/{self.name} v{self.version}>"


class Task:
    """The background task an invocation runs, as ``context.task``.

    ``context.task`` is None for plain (synchronous) invocations.
    """

    id: str
    """The task id, as ``hyac tasks show ID`` and ``GET /v1/tasks/{id}`` know it."""
    attempt: int
    """Which run of the task this is: 1 for the first, 2 for the first retry, and so on.
    A run interrupted by a crash is run again with the next number (at-least-once)."""

    def __init__(self, host: Host, request_id: str, id: str, attempt: int) -> None:
        """Describe task ``id`` run by ``request_id``, reporting progress through ``host``."""
        self._host = host
        self._request_id = request_id
        self.id = id
        self.attempt = attempt

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the task is, from 0.0 to 1.0, with an optional short message.

        ``hyac tasks watch`` shows it as a progress bar. Values outside 0..1 are clamped.
        """
        self._host.call(self._request_id, "task.progress", _progress_args(fraction, message)).result()

    async def aprogress(self, fraction: float, message: str = "") -> None:
        """Async ``progress``: report how far the task is, from 0.0 to 1.0."""
        args = _progress_args(fraction, message)
        await _wrap_future(self._host.call(self._request_id, "task.progress", args))

    def __repr__(self) -> str:
        """Show the task id and attempt."""
        return f"<Task {self.id} attempt={self.attempt}>"


class FunctionContext:
    """Everything a function can reach; passed as ``context`` to ``main(context)``."""

    request: Request
    """The HTTP request being served."""
    logger: Logger
    """Log lines tagged with this request's id."""
    env: Mapping[str, str]
    """The function's environment variables (read-only)."""
    kv: KV
    """The tenant's key-value store."""
    function: FunctionInfo
    """Which function, version and request this is."""
    deadline: float
    """When the invocation must be finished, as a Unix timestamp in seconds."""
    task: Task | None
    """The background task this invocation runs (id, attempt, ``progress()``), or None."""
    secrets: TenantSecrets
    """The tenant's secrets, a read-only mapping: ``context.secrets["API_KEY"]``."""
    db: Database
    """The tenant's own SQL database: ``execute``, ``fetchall``, ``transaction()``."""
    storage: Storage
    """The tenant's object storage: ``put``, ``get``, ``stat``, ``delete``, ``list``."""
    mail: Mail
    """Email through the agent's SMTP server: ``send(to, subject, text, html, ...)``."""
    Response = Response
    """The Response class, so ``return context.Response(status=201, body=...)`` works."""

    def __init__(
        self,
        *,
        request: Request,
        logger: Logger,
        env: Mapping[str, str],
        kv: KV,
        function: FunctionInfo,
        deadline: float,
        task: Task | None = None,
        host: Host | None = None,
        secrets: TenantSecrets | None = None,
        db: Database | None = None,
        storage: Storage | None = None,
        mail: Mail | None = None,
    ) -> None:
        """Assemble a context; the runtime builds one per invocation."""
        self.request = request
        self.logger = logger
        self.env = MappingProxyType(dict(env))
        self.kv = kv
        self.function = function
        self.deadline = deadline
        self.task = task
        self._host = host
        self.secrets = secrets if secrets is not None else TenantSecrets(host, function.request_id)
        self.db = db if db is not None else Database(host, function.request_id)
        self.storage = storage if storage is not None else Storage(host, function.request_id)
        self.mail = mail if mail is not None else Mail(host, function.request_id)

    def enqueue(self, function: str, payload: Any = None, *, delay: float = 0.0) -> str:
        """Queue a background task of ``function`` (of this tenant); return its task id.

        ``payload`` (JSON-serialisable) becomes the task's JSON request body, read with
        ``context.request.json()``; ``delay`` seconds postpone its start.
        """
        return str(self._enqueue_call(function, payload, delay).result())

    async def aenqueue(self, function: str, payload: Any = None, *, delay: float = 0.0) -> str:
        """Async ``enqueue``: queue a task of ``function``; return its task id."""
        return str(await _wrap_future(self._enqueue_call(function, payload, delay)))

    def _enqueue_call(self, function: str, payload: Any, delay: float) -> Future[Any]:
        if self._host is None:
            raise RuntimeError("enqueue needs the Hyac runtime (this context has no host)")
        if not isinstance(function, str) or not function:
            raise TypeError("enqueue needs a function name (str)")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError(f"enqueue delay must be a number of seconds >= 0, not {delay!r}")
        try:
            _json_dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"task payloads must be JSON-serialisable: {exc}") from None
        args = {"function": function, "payload": payload, "delay": float(delay)}
        return self._host.call(self.function.request_id, "task.enqueue", args)

    def invoke(
        self,
        name: str,
        payload: Any = None,
        *,
        method: str = "POST",
        path: str = "/",
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InvokeResponse:
        """Run function ``name`` (of this tenant) now and wait for its response.

        ``payload`` becomes the callee's request body: bytes as they are, anything else
        as JSON (read with ``context.request.json()``); None sends no body. The callee's
        time is capped by this invocation's remaining time, and calls nest at most 8 deep.
        Raises InvocationError if the callee raised, and HostCallError (code
        ``"not_found"``) if there is no such function. From ``async def main`` use
        ``await context.ainvoke(...)``.
        """
        if _on_event_loop():  # the wait would stop the loop serving the callee
            raise RuntimeError(
                "context.invoke() would block the event loop; use await context.ainvoke() "
                "in an async function"
            )
        return _invoke_response(name, self._invoke_call(name, payload, method, path, query,
                                                        headers).result())

    async def ainvoke(
        self,
        name: str,
        payload: Any = None,
        *,
        method: str = "POST",
        path: str = "/",
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InvokeResponse:
        """Async ``invoke``: run function ``name`` now and wait for its response."""
        future = self._invoke_call(name, payload, method, path, query, headers)
        return _invoke_response(name, await _wrap_future(future))

    def _invoke_call(
        self,
        name: str,
        payload: Any,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> Future[Any]:
        if self._host is None:
            raise RuntimeError("invoke needs the Hyac runtime (this context has no host)")
        args = _invoke_args(name, payload, method, path, query, headers)
        return self._host.call(self.function.request_id, "function.invoke", args)

    def notify(self, channel: str, text: str, **fields: str | int | float | bool) -> str:
        """Send ``text`` to the notification channel ``channel``; return its delivery id.

        ``channel`` is one of the tenant's channels (``hyac notify channel add``) or a
        platform channel the owner shares, as ``"platform/NAME"``. ``fields`` are shown
        beside the text (Slack fields, Discord embed fields, Teams facts, the webhook's
        ``fields``). The agent stores the notification and answers at once; it sends it
        with retries (``hyac notify deliveries`` shows how it went). Each call counts
        towards the tenant's ``notifications_per_day`` quota. Raises HostCallError:
        ``not_found`` (no such channel), ``invalid_input`` (empty text, over 4000
        characters, more than 20 fields) or ``quota_exceeded``. From ``async def main``
        use ``await context.anotify(...)``.
        """
        return str(self._notify_call(channel, text, fields).result()["id"])

    async def anotify(self, channel: str, text: str, **fields: str | int | float | bool) -> str:
        """Async ``notify``: send ``text`` to ``channel``; return its delivery id."""
        return str((await _wrap_future(self._notify_call(channel, text, fields)))["id"])

    def _notify_call(self, channel: str, text: str, fields: dict[str, Any]) -> Future[Any]:
        if self._host is None:
            raise RuntimeError("notify needs the Hyac runtime (this context has no host)")
        if not isinstance(channel, str) or not channel:
            raise TypeError("notify needs a channel name (str)")
        if not isinstance(text, str):
            raise TypeError(f"notification text must be str, not {type(text).__name__}")
        args = {"channel": channel, "text": text, "fields": dict(fields)}
        return self._host.call(self.function.request_id, "notify.send", args)

    def remaining_time(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - time.time())

    def __repr__(self) -> str:
        """Show the function and request."""
        return f"<FunctionContext {self.function!r} {self.request!r}>"


_BODY_TYPES = (bytes, bytearray, memoryview, str, dict, list)


def _parse_json(body: bytes, what: str) -> Any:
    """``body`` parsed as JSON (``None`` when empty); ValueError naming ``what`` if invalid."""
    if not body.strip():
        return None
    try:
        return _json_loads(body)
    except ValueError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
            try:
                return codecs.lookup(charset).name
            except LookupError:
                break
    return "utf-8"


def _check_key(key: object, what: str = "kv") -> str:
    if not isinstance(key, str):
        raise TypeError(f"{what} keys must be str, not {type(key).__name__}")
    if not key:
        raise ValueError(f"{what} keys must not be empty")
    return key


def _check_json(value: object) -> object:
    try:
        _json_dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"kv values must be JSON-serialisable: {exc}") from None
    return value


def _progress_args(fraction: object, message: object) -> dict[str, Any]:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"progress fraction must be a number, not {type(fraction).__name__}")
    if fraction != fraction:  # NaN
        raise ValueError("progress fraction must be a number from 0 to 1, not NaN")
    if not isinstance(message, str):
        raise TypeError(f"progress message must be str, not {type(message).__name__}")
    return {"fraction": min(max(float(fraction), 0.0), 1.0), "message": message}


def _sql_args(sql: object, params: object) -> dict[str, Any]:
    if not isinstance(sql, str) or not sql.strip():
        raise TypeError("sql must be a non-empty str")
    if params is None:
        params = []
    elif isinstance(params, tuple):
        params = list(params)
    if not isinstance(params, (list, dict)):
        raise TypeError(f"params must be a list, tuple or dict, not {type(params).__name__}")
    try:
        _json_dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"params must be JSON-serialisable: {exc}") from None
    return {"sql": sql, "params": params}


def _rows(value: Any) -> builtins.list[dict[str, Any]]:
    columns = [str(c) for c in value.get("columns", [])]
    return [dict(zip(columns, row)) for row in value.get("rows", [])]  # noqa: B905 - runs on 3.9


def _list_args(prefix: object, limit: object, what: str = "kv") -> dict[str, Any]:
    if not isinstance(prefix, str):
        raise TypeError(f"{what} prefix must be str, not {type(prefix).__name__}")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"{what} limit must be a positive int, not {limit!r}")
    return {"prefix": prefix, "limit": limit}


def _page_args(prefix: object, limit: object, start_after: object) -> dict[str, Any]:
    args = _list_args(prefix, limit, "storage")
    if start_after is not None:
        if not isinstance(start_after, str):
            raise TypeError(f"storage start_after must be str, not {type(start_after).__name__}")
        args["start_after"] = start_after
    return args


def _put_args(key: object, data: object, content_type: object) -> dict[str, Any]:
    if isinstance(data, str):
        data = data.encode("utf-8")
        content_type = content_type or "text/plain; charset=utf-8"
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"storage data must be bytes or str, not {type(data).__name__}")
    if content_type is not None and not isinstance(content_type, str):
        raise TypeError(f"content_type must be str, not {type(content_type).__name__}")
    return {"key": _check_key(key, "storage"), "data_b64": _b64encode(data),
            "content_type": content_type}


def _addresses(value: object, what: str) -> str | builtins.list[str] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (builtins.list, tuple)) and all(isinstance(v, str) for v in value):
        return builtins.list(value)
    raise TypeError(f"mail {what} must be an address (str) or a list of them, not {value!r:.80}")


def _mail_args(
    to: object, subject: object, text: object, html: object, cc: object, bcc: object,
    reply_to: object, attachments: object, from_name: object,
) -> dict[str, Any]:
    if not isinstance(subject, str):
        raise TypeError(f"mail subject must be str, not {type(subject).__name__}")
    for body, what in ((text, "text"), (html, "html")):
        if body is not None and not isinstance(body, str):
            raise TypeError(f"mail {what} must be str, not {type(body).__name__}")
    files = []
    for item in attachments or ():
        if isinstance(item, tuple) and len(item) == 2:
            item = Attachment(*item)
        if not isinstance(item, Attachment):
            raise TypeError("mail attachments are Attachment objects or (filename, data) pairs")
        files.append({"filename": item.filename, "content_type": item.content_type,
                      "data_b64": _b64encode(item.data)})
    return {"to": _addresses(to, "to"), "cc": _addresses(cc, "cc"), "bcc": _addresses(bcc, "bcc"),
            "reply_to": _addresses(reply_to, "reply_to"), "subject": subject, "text": text,
            "html": html, "attachments": files, "from_name": from_name}


def _object_info(value: Any) -> ObjectInfo:
    return ObjectInfo(str(value["key"]), int(value["size"]), str(value["content_type"]),
                      str(value["sha256"]), float(value["updated_at"]))


def _object_bytes(value: Any) -> bytes | None:
    return None if value is None else binascii.a2b_base64(value["data_b64"])


def _invoke_args(
    name: object,
    payload: object,
    method: object,
    path: object,
    query: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise TypeError("invoke needs a function name (str)")
    if not isinstance(method, str) or not method.isalpha():
        raise ValueError(f"invoke method must be an HTTP method such as 'POST', not {method!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"invoke path must be a str starting with '/', not {path!r}")
    sent = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    if payload is None:
        body = b""
    elif isinstance(payload, (bytes, bytearray, memoryview)):
        body = bytes(payload)
        sent.setdefault("content-type", "application/octet-stream")
    else:
        try:
            body = _json_dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise TypeError(f"invoke payloads must be bytes or JSON-serialisable: {exc}") from None
        sent.setdefault("content-type", "application/json")
    return {
        "function": name,
        "method": method.upper(),
        "path": path,
        "query": {str(k): str(v) for k, v in (query or {}).items()},
        "headers": sent,
        "body_b64": _b64encode(body),
    }


def _b64encode(data: bytes | bytearray | memoryview) -> str:
    """``base64.b64encode(data).decode()``, without importing base64 (and re)."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _b64decode_strict(data: str) -> bytes:
    """``base64.b64decode(data, validate=True)``, without importing base64 (and re)
    where binascii validates by itself (3.11+)."""
    if sys.version_info >= (3, 11):
        return binascii.a2b_base64(data, strict_mode=True)
    import base64

    return base64.b64decode(data, validate=True)


def _wrap_future(future: Future[Any]) -> Awaitable[Any]:
    """A host call's future as an awaitable of the running loop (an ``async`` method
    runs on one, so asyncio is imported already)."""
    import asyncio

    return asyncio.wrap_future(future)


def _on_event_loop() -> bool:
    """Whether this thread runs an event loop (none can before asyncio is imported)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _host_call_error(error: object) -> HostCallError:
    """The exception for a host call's ``error`` object: InvocationError for a
    ``function_error`` (what the callee of ``function.invoke`` raised), else HostCallError."""
    fields = error if isinstance(error, dict) else {}
    code, message = str(fields.get("code", "error")), str(fields.get("message", ""))
    if code == "function_error":
        return InvocationError(
            str(fields.get("function", "")), str(fields.get("type") or "Error"), message,
            str(fields.get("traceback", "")), str(fields.get("request_id", "")),
        )
    return HostCallError(code, message, {k: v for k, v in fields.items() if k not in ("code", "message")})


def _invoke_response(name: str, value: Any) -> InvokeResponse:
    value = value if isinstance(value, dict) else {}
    return InvokeResponse(
        status=int(value.get("status", 200)),
        headers=value.get("headers") or {},
        body=binascii.a2b_base64(value.get("body_b64") or ""),
        function=name,
        version=int(value.get("version") or 0),
        request_id=str(value.get("request_id", "")),
    )


def _encode_body(body: Any) -> tuple[bytes, str | None]:
    """Turn a body into bytes and the content-type it implies."""
    if body is None:
        return b"", None
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), "application/octet-stream"
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"
    if isinstance(body, (dict, list, tuple, int, float, bool)):
        try:
            text = _json_dumps(body, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the returned value is not JSON-serialisable: {exc}") from None
        return text.encode("utf-8"), "application/json"
    raise TypeError(
        f"a function must return dict, list, str, bytes, a number, None or a Response, "
        f"not {type(body).__name__}"
    )


def _to_wire_response(value: Any) -> tuple[int, dict[str, str], bytes]:
    """Map a handler's return value to (status, headers, body) per the protocol."""
    if value is None:
        return 204, {}, b""
    if isinstance(value, Response):
        body, implied = _encode_body(value.body)
        headers = dict(value.headers)
        if implied and body and not any(k.lower() == "content-type" for k in headers):
            headers["content-type"] = implied
        return value.status, headers, body
    body, implied = _encode_body(value)
    return 200, ({"content-type": implied} if implied else {}), body


# -- JSON without the json package ------------------------------------------------------
# ``import json`` compiles the package's regular expressions, and with them imports ``re``
# and ``enum``: about 5 ms of every sandbox's start. Parsing and serialising are done by
# ``_json``, the C accelerator that ``json`` itself uses, so these drive it directly, with
# the settings ``json.loads`` and ``json.dumps`` give it. Every input ``_json`` does not
# take as it is (byte order marks, other encodings, errors), and any interpreter without
# ``_json``, goes to the ``json`` package: results and error messages are ``json``'s.
# (The worker's framing uses them too, from _hyac_protocol.py; this module stays whole
# by itself, as editor tools load it.)

_JSON_WHITESPACE = " \t\n\r"


def _json_package() -> Any:
    import json

    return json


def _json_not_serialisable(value: object) -> Any:
    """``json.JSONEncoder.default``: what it raises, word for word."""
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


class _JSONDecoderSettings:
    """What the C scanner reads from a ``json.JSONDecoder``: ``json.loads``'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan"),
    }.__getitem__


try:
    from _json import encode_basestring as _json_encode_str
    from _json import encode_basestring_ascii as _json_encode_ascii
    from _json import make_encoder as _json_make_encoder
    from _json import make_scanner as _json_make_scanner

    _json_scan = _json_make_scanner(_JSONDecoderSettings())
    # The C encoder as json.JSONEncoder builds it, once to prove this interpreter's takes
    # these arguments (a later interpreter may not: then the json package serves).
    _json_make_encoder({}, _json_not_serialisable, _json_encode_str, None, ":", ",",
                       False, False, False)
except (ImportError, TypeError, AttributeError):  # pragma: no cover - every CPython has it
    _json_scan = None


def _json_loads(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)``."""
    if _json_scan is None:
        return _json_package().loads(text)
    if not isinstance(text, str):
        # json.loads reads UTF-16 and UTF-32 too, told by a byte order mark or zero bytes.
        if (not isinstance(text, (bytes, bytearray)) or b"\x00" in text[:4]
                or text[:3] == b"\xef\xbb\xbf" or text[:2] in (b"\xff\xfe", b"\xfe\xff")):
            return _json_package().loads(text)
        try:
            text = text.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return _json_package().loads(text)  # raises json's own error
    if text.startswith("\ufeff"):
        return _json_package().loads(text)
    start = len(text) - len(text.lstrip(_JSON_WHITESPACE))
    try:
        value, end = _json_scan(text, start)
    except (StopIteration, ValueError, SystemError):
        # json's own error, with its line and column. (The scanner of 3.10 and 3.11 takes
        # its error class from json.decoder only when that is imported already, and
        # fails with a SystemError when it is not.)
        return _json_package().loads(text)
    if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
        return _json_package().loads(text)  # "Extra data"
    return value


def _json_dumps(value: Any, *, ensure_ascii: bool = True, allow_nan: bool = True,
                separators: tuple[str, str] | None = None) -> str:
    """``json.dumps(value, ensure_ascii=..., allow_nan=..., separators=...)``."""
    if _json_scan is None:
        return str(_json_package().dumps(value, ensure_ascii=ensure_ascii,
                                         allow_nan=allow_nan, separators=separators))
    item_separator, key_separator = separators or (", ", ": ")
    # A new encoder per call, as json.dumps makes one: its record of the containers
    # being encoded (which finds circular references) belongs to one call.
    encode = _json_make_encoder(
        {}, _json_not_serialisable, _json_encode_ascii if ensure_ascii else _json_encode_str,
        None, key_separator, item_separator, False, False, allow_nan,
    )
    chunks = encode(value, 0)
    return chunks if isinstance(chunks, str) else "".join(chunks)
