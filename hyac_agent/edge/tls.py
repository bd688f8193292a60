"""HTTPS for custom domains: the certificates tenants upload (or ACME obtains), and the
agent's second listener, which picks a certificate by SNI.

``HYAC_TLS_PORT`` turns the listener on (on the agent's host address);
``HYAC_TLS_PUBLIC_PORT`` is the port clients reach it by, for redirects (default: the
same; 443 is left out of URLs). A plain-HTTP request to a domain with a certificate is
redirected (308) to HTTPS, except the ownership and ACME challenge paths.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from typing import TYPE_CHECKING, Any

from hyac_agent.edge import certificates
from hyac_agent.edge.hosts import normalise_host
from hyac_agent.edge.store import Certificate
from hyac_common.errors import NotFound

if TYPE_CHECKING:
    import uvicorn

    from hyac_agent.edge.service import EdgeService

log = logging.getLogger("hyac.edge")


class Certificates:
    def __init__(self, edge: EdgeService) -> None:
        self.edge = edge
        self._contexts: dict[str, ssl.SSLContext] = {}  # by fingerprint
        #: the HTTPS listener's public port while it runs
        self.https_port: int | None = None

    def _active_domain(self, tenant: str, host: str) -> str:
        host = normalise_host(host)
        domain = self.edge.snapshot().domains.get(host)
        if domain is None or domain.tenant != tenant:
            raise NotFound(f"no active domain {host} in tenant {tenant!r} (add and verify it first)")
        return host

    async def put(self, tenant: str, host: str, cert_pem: str, key_pem: str,
                  source: str = "upload") -> Certificate:
        await self.edge.reload()
        host = self._active_domain(tenant, host)
        checked = await asyncio.to_thread(certificates.check, host, cert_pem, key_pem)
        record = Certificate(host, tenant, checked.cert_pem, self.edge.encrypt(checked.key_pem),
                             checked.not_after, checked.fingerprint, source, time.time())
        await asyncio.to_thread(self.edge.store.put_certificate, record)
        await self.edge.reload()
        return record

    async def get(self, tenant: str, host: str) -> Certificate:
        await self.edge.reload()
        host = normalise_host(host)
        cert = self.edge.snapshot().certificates.get(host)
        if cert is None or cert.tenant != tenant:
            raise NotFound(f"no certificate for {host} in tenant {tenant!r}")
        return cert

    async def remove(self, tenant: str, host: str) -> None:
        if not await asyncio.to_thread(self.edge.store.delete_certificate, tenant,
                                       normalise_host(host)):
            raise NotFound(f"no certificate for {host} in tenant {tenant!r}")
        await self.edge.reload()

    def has(self, host: str) -> bool:
        return host in self.edge.snapshot().certificates

    def context(self, host: str) -> ssl.SSLContext | None:
        """The server context for ``host`` (blocking the first time: a thread of the
        TLS handshake)."""
        record = self.edge.snapshot().certificates.get(host)
        if record is None:
            return None
        context = self._contexts.get(record.fingerprint)
        if context is None:
            context = certificates.context_for(record.cert_pem, self.edge.decrypt(record.key_pem))
            known = {c.fingerprint for c in self.edge.snapshot().certificates.values()}
            self._contexts = {k: v for k, v in self._contexts.items() if k in known}
            self._contexts[record.fingerprint] = context
        return context

    def redirect(self, host: str, scope: dict[str, Any]) -> str | None:
        """The HTTPS URL a plain request to ``host`` goes to, if it has a certificate."""
        if self.https_port is None or scope.get("scheme") != "http" or not self.has(host):
            return None
        port = "" if self.https_port == 443 else f":{self.https_port}"
        query = scope.get("query_string", b"").decode("latin-1")
        return f"https://{host}{port}{scope.get('path', '/')}" + (f"?{query}" if query else "")


class HttpsListener:
    """A second uvicorn server on the same event loop and application (no lifespan of
    its own: the agent's first server runs that), with TLS by SNI; and the ACME loop."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        self.edge: EdgeService | None = None
        self.task: asyncio.Task[None] | None = None
        #: the port HTTPS is served on while it is (None: off)
        self.port: int | None = None

    async def start(self, app: Any, host: str) -> None:
        """Start the ACME loop, and the listener if ``HYAC_TLS_PORT`` is set."""
        port = os.environ.get("HYAC_TLS_PORT")
        edge: EdgeService | None = getattr(app.state, "edge", None)
        if edge is None:
            return
        self.edge = edge
        edge.acme.start()
        if not port:
            return
        import uvicorn

        from hyac_agent.listener import listening_socket

        sock = listening_socket(host, int(port))
        base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        base.minimum_version = ssl.TLSVersion.TLSv1_2
        base.set_alpn_protocols(["http/1.1"])

        def pick(connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> int | None:
            context = edge.certificates.context(name.lower().rstrip(".")) if name else None
            if context is None:
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            connection.context = context
            return None

        base.sni_callback = pick  # type: ignore[assignment]
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                                proxy_headers=False)
        config.load()
        config.ssl = base
        self.server = uvicorn.Server(config)
        # _serve, not serve: the agent's first server handles the signals
        self.task = asyncio.create_task(self.server._serve(sockets=[sock]))
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        bound = self.port = sock.getsockname()[1]
        edge.certificates.https_port = int(os.environ.get("HYAC_TLS_PUBLIC_PORT") or bound)
        log.info("HTTPS for custom domains on port %s", bound)

    async def stop(self) -> None:
        if self.edge is not None:
            await self.edge.acme.stop()
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task
        self.port = None


#: the agent's HTTPS listener (``hyac-agent serve`` starts and stops it)
https = HttpsListener()
