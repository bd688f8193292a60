"""The CLI's httpx client for the agent API (docs/api.md).

Where the agent is:

| setting    | environment variable | default                                   |
|------------|----------------------|-------------------------------------------|
| agent URL  | HYAC_URL             | ``url`` in ``DATA_DIR/agent.json``        |
| API token  | HYAC_TOKEN           | ``token`` in ``DATA_DIR/agent.json``      |
| tenant     | HYAC_TENANT          | the project's tenant, else ``default``    |

Commands get a client from :func:`connect`; tests replace :data:`transport_factory`
with one that returns an ``httpx.MockTransport``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hyac_common import errors
from hyac_common.paths import agent_state_path, read_agent_state

if TYPE_CHECKING:
    import httpx

DEFAULT_TENANT = "default"
TENANT_HEADER = "X-Hyac-Tenant"
DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0

# Returns the transport for new clients; None means httpx's own network transport.
transport_factory: Callable[[], httpx.BaseTransport | None] = lambda: None  # noqa: E731


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str | None


def resolve_endpoint() -> Endpoint:
    """The agent to talk to: ``HYAC_URL``/``HYAC_TOKEN``, else the local agent.json."""
    url = os.environ.get("HYAC_URL", "").strip()
    token = os.environ.get("HYAC_TOKEN") or None
    state = read_agent_state()
    if url:
        if token is None and state and same_url(state.get("url"), url):
            token = state.get("token")
        return Endpoint(check_url(url, "HYAC_URL"), token)
    from hyac_cli import profiles

    chosen = profiles.active()
    if chosen is not None:
        name, profile = chosen
        if not profile.get("url"):
            raise errors.InvalidInput(f"profile {name!r} has no url; run `hyac login` again")
        return Endpoint(check_url(str(profile["url"]), f"profile {name!r}"),
                        token or profile.get("token"))
    if state and state.get("url"):
        return Endpoint(check_url(str(state["url"]), str(agent_state_path())),
                        token or state.get("token"))
    raise errors.AgentUnreachable(
        f"no agent is running (no {agent_state_path()}) — start one with `hyac agent up`"
    )


def check_url(url: str, source: str) -> str:
    """``url`` without its trailing slash, if it is an http(s) URL with a host."""
    from urllib.parse import urlsplit

    problem = None
    try:
        parsed = urlsplit(url.strip())
        parsed.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as exc:
        problem = str(exc).rstrip(".")
    else:
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            problem = "use http://HOST:PORT or https://HOST"
    if problem:
        raise errors.InvalidInput(f"invalid agent URL {url!r} (from {source}): {problem}")
    return url.strip().rstrip("/")


def segment(value: str, what: str = "name") -> str:
    """``value`` quoted as one segment of an API path: it can never name another route."""
    from urllib.parse import quote

    if value in ("", ".", ".."):
        raise errors.InvalidInput(f"invalid {what} {value!r}")
    return quote(value, safe="")


def _check_path(path: str) -> None:
    # The last line of defence: httpx resolves dot segments, so `../functions/x` built
    # from user input would reach another route entirely.
    if any(part in (".", "..") for part in path.split("?", 1)[0].split("/")):
        raise errors.InvalidInput(f"invalid name in {path!r}: '.' and '..' are not names")


def unreachable(url: str, reason: object = None) -> errors.AgentUnreachable:
    """The error for nothing answering at ``url``: a local agent may just need starting."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return errors.AgentUnreachable(
            f"no agent is running at {url} — start one with `hyac agent up`"
        )
    detail = f" ({reason})" if reason and str(reason) else ""
    return errors.AgentUnreachable(f"cannot reach the agent at {url}{detail}")


class AgentClient:
    """A thin wrapper over ``httpx.Client`` that speaks the agent's error format."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        tenant: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        self.url = endpoint.url
        headers = {"User-Agent": "hyac-cli"}
        if endpoint.token:
            headers["Authorization"] = f"Bearer {endpoint.token}"
        if tenant:
            headers[TENANT_HEADER] = tenant
        self._http = httpx.Client(
            base_url=endpoint.url,
            headers=headers,
            timeout=_timeout(timeout),
            transport=transport,
        )

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None | str = "default",
    ) -> Any:
        """Send one request and return its decoded JSON, or raise the matching HyacError."""
        _check_path(path)
        extra: dict[str, Any] = {}
        if timeout != "default":
            extra["timeout"] = _timeout(timeout)  # type: ignore[arg-type]
        with self._translate_errors():
            response = self._http.request(method, path, json=json, params=params, **extra)
        return decoded(response, f"the agent at {self.url} answered {method} {path}")

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def send(self, method: str, path: str, *, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        """One request with a raw body; the raw answer (objects are not JSON)."""
        _check_path(path)
        with self._translate_errors():
            response = self._http.request(method, path, content=content, headers=headers)
        raise_for_error(response)
        return response

    def stream_lines(self, path: str, *, params: dict[str, Any] | None = None) -> Iterator[str]:
        """Lines of a streamed answer (server-sent events), waiting as long as it takes."""
        import httpx

        _check_path(path)
        with self._translate_errors():
            timeout = httpx.Timeout(DEFAULT_TIMEOUT, connect=CONNECT_TIMEOUT, read=None)
            with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response)
                yield from response.iter_lines()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        import httpx

        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise unreachable(self.url, exc) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # The agent went away mid-answer (a restart, a kill): followers reconnect.
            raise errors.ConnectionLost(f"the connection to the agent at {self.url} broke: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise errors.HyacError(f"the agent at {self.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise errors.HyacError(f"talking to the agent at {self.url} failed: {exc}") from exc


def decoded(response: httpx.Response, what: str) -> Any:
    """The JSON of a successful answer (None when empty), else the error it stands for."""
    raise_for_error(response)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise errors.HyacError(f"{what} with something not JSON") from exc


def raise_for_error(response: httpx.Response) -> None:
    """Turn an error answer into the HyacError it stands for."""
    if response.status_code < 400:
        return
    code, message, details = _error_of(response)
    # The agent's further fields (request_id, quota, ...) stay with the error, so
    # `--json` hands them on to scripts.
    raise errors.from_json({**details, "code": code, "message": message}, response.status_code)


def _error_of(response: httpx.Response) -> tuple[str | None, str, dict[str, Any]]:
    fallback = f"the agent answered HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return None, f"{fallback}: {text[0][:200]}" if text else fallback, {}
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            details = {k: v for k, v in error.items() if k not in ("code", "message")}
            return error.get("code"), str(error["message"]), details
        detail = body.get("detail")  # FastAPI's own validation errors
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            where = ".".join(str(p) for p in detail[0].get("loc", ()) if p != "body")
            return errors.InvalidInput.code, f"{where}: {detail[0].get('msg', 'invalid')}".lstrip(": "), {}
        if isinstance(detail, str):
            return None, detail, {}
    return None, fallback, {}


def connect(*, tenant: str | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> AgentClient:
    """A client for the configured agent, or AgentUnreachable if there is none."""
    return AgentClient(
        resolve_endpoint(), tenant=tenant, timeout=timeout, transport=transport_factory()
    )


def connect_light(*, tenant: str | None = None, timeout: float | None = DEFAULT_TIMEOUT
                  ) -> AgentClient | LightClient:
    """``connect``, but plain JSON requests go through http.client when nothing calls
    for httpx (no test transport, a plain-http agent, no proxy to honour for it)."""
    endpoint = resolve_endpoint()
    transport = transport_factory()
    if transport is None and LightClient.suits(endpoint.url):
        return LightClient(endpoint, tenant=tenant, timeout=timeout)
    return AgentClient(endpoint, tenant=tenant, timeout=timeout, transport=transport)


def unexpected_answer(what: str) -> errors.HyacError:
    return errors.HyacError(f"unexpected answer from the agent (not {what})")


class _Answer:
    """What ``raise_for_error`` reads of an answer (as of an ``httpx.Response``)."""

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        import json

        return json.loads(self.content)


class LightClient:
    """The JSON requests of ``AgentClient`` over http.client: one connection, no httpx
    (whose import alone costs more than the rest of ``hyac invoke``)."""

    def __init__(self, endpoint: Endpoint, *, tenant: str | None = None,
                 timeout: float | None = DEFAULT_TIMEOUT) -> None:
        from urllib.parse import urlsplit

        self.url = endpoint.url
        parts = urlsplit(endpoint.url)
        self._host, self._port = parts.hostname or "", parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"User-Agent": "hyac-cli", "Accept": "application/json"}
        if endpoint.token:
            self._headers["Authorization"] = f"Bearer {endpoint.token}"
        if tenant:
            self._headers[TENANT_HEADER] = tenant

    @staticmethod
    def suits(url: str) -> bool:
        from urllib.parse import urlsplit
        from urllib.request import getproxies, proxy_bypass

        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return False
        return "http" not in getproxies() or bool(proxy_bypass(parts.hostname))

    def __enter__(self) -> LightClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        import http.client
        import json as json_module
        import socket
        from urllib.parse import urlencode

        _check_path(path)
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self._headers)
        body = None
        if json is not None:
            body = json_module.dumps(json).encode()
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(self._host, self._port, timeout=CONNECT_TIMEOUT)
        try:
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(self._timeout)
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            answer = _Answer(response.status, response.read())
        except (ConnectionRefusedError, socket.gaierror) as exc:
            raise unreachable(self.url, exc) from exc
        except TimeoutError as exc:
            raise errors.HyacError(f"the agent at {self.url} did not answer in time") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise errors.HyacError(f"talking to the agent at {self.url} failed: {exc}") from exc
        finally:
            connection.close()
        return decoded(answer, f"the agent at {self.url} answered {method} {path}")  # type: ignore[arg-type]

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)


def health(url: str, *, timeout: float = 2.0) -> dict[str, Any] | None:
    """The agent's ``/v1/health`` answer, or None if nothing healthy answers at ``url``."""
    import httpx

    try:
        with httpx.Client(timeout=timeout, transport=transport_factory()) as http:
            response = http.get(url.rstrip("/") + "/v1/health")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _timeout(seconds: float | None) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(seconds, connect=CONNECT_TIMEOUT)


def same_url(a: object, b: str) -> bool:
    return isinstance(a, str) and a.rstrip("/") == b.rstrip("/")
