"""Certificates obtained by ACME (RFC 8555, HTTP-01) and renewed before they expire.

The platform owner names the ACME server (``acme_directory`` in the edge settings, e.g.
Let's Encrypt's, or a private one with ``acme_ca_bundle``, the PEM roots its HTTPS is
signed by); a tenant asks for ACME per domain (``hyac domain acme HOST``). A loop issues
a certificate for every such active domain that has none from ACME, and renews each one
``acme_renew_before_days`` (30) before it ends; it runs every ``HYAC_ACME_INTERVAL``
seconds (3600) and at once when a domain asks. A domain whose order fails is tried
again later, waiting longer each time (up to the interval). The challenge answers live
in the store while an order runs, so any agent of a cluster answers them; the ACME
server must reach an agent's HTTP listener (port 80, or a proxy forwarding
``/.well-known/acme-challenge/`` to it). A lease in the store lets one agent at a time
order a domain's certificate.

The protocol is certbot's ``acme`` library; it is blocking, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyac_agent.waiting import wake_or_timeout

if TYPE_CHECKING:
    from hyac_agent.edge.service import EdgeService

log = logging.getLogger("hyac.edge.acme")
CHALLENGE_PATH = "/.well-known/acme-challenge/"


class Acme:
    def __init__(self, edge: EdgeService) -> None:
        self.edge = edge
        self.interval = float(os.environ.get("HYAC_ACME_INTERVAL") or 3600)
        #: HTTP-01 token -> key authorization, while an order is pending
        self.tokens: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: host -> (failures so far, no new try before)
        self._backoff: dict[str, tuple[int, float]] = {}
        #: host -> the last failure, for `hyac domain ls`
        self.errors: dict[str, str] = {}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def answer(self, path: str) -> str | None:
        """The key authorization for an HTTP-01 token of an order of this agent's, or of
        another agent of the cluster (kept in the store while the order runs)."""
        token = path[len(CHALLENGE_PATH):]
        if token in self.tokens:
            return self.tokens[token]
        if not token or len(token) > 200:
            return None
        value = await asyncio.to_thread(self.edge.store.get_setting, f"acme_token:{token}")
        return value if isinstance(value, str) else None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # the store or the ACME server is down: next round
                log.exception("ACME round failed")
            await wake_or_timeout(self._wake, self.interval)
            self._wake.clear()

    def due(self) -> list[str]:
        """The hosts that need a certificate from ACME now."""
        settings = self.edge.settings()
        if not settings["acme_directory"]:
            return []
        snap = self.edge.snapshot()
        before = float(settings["acme_renew_before_days"]) * 86400
        now = time.time()
        hosts = []
        for host, domain in snap.domains.items():
            if not domain.acme:
                continue
            cert = snap.certificates.get(host)
            if cert is not None and (cert.source != "acme" or cert.not_after - now > before):
                continue  # an uploaded certificate is the tenant's choice; a fresh one stays
            if self._backoff.get(host, (0, 0.0))[1] > now:
                continue
            hosts.append(host)
        return hosts

    async def run_once(self) -> None:
        await self.edge.reload()
        for host in self.due():
            domain = self.edge.snapshot().domains[host]
            lease = f"acme_lease:{host}"
            # one agent of a cluster orders a domain's certificate at a time
            if not await asyncio.to_thread(self.edge.store.take_lease, lease, 600):
                continue
            try:
                chain, key = await asyncio.to_thread(self._issue, host)
                await self.edge.certificates.put(domain.tenant, host, chain, key, source="acme")
            except Exception as exc:
                failures = self._backoff.get(host, (0, 0.0))[0] + 1
                wait = min(self.interval, 10.0 * 2 ** failures)
                self._backoff[host] = (failures, time.time() + wait)
                self.errors[host] = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("ACME: no certificate for %s (%s); next try in %.0f s", host,
                            self.errors[host], wait)
            else:
                self._backoff.pop(host, None)
                self.errors.pop(host, None)
                log.info("ACME: certificate for %s", host)
            finally:
                await asyncio.to_thread(self.edge.store.delete_setting, lease)

    # the protocol (blocking) -----------------------------------------------------------

    def _issue(self, host: str) -> tuple[str, str]:
        """A new key and the certificate chain the ACME server signs for ``host``."""
        from acme import challenges, crypto_util, messages
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        client, account_key = self._client()
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        order = client.new_order(crypto_util.make_csr(key_pem, [host]))
        answered: list[str] = []
        try:
            for authorization in order.authorizations:
                if authorization.body.status == messages.STATUS_VALID:
                    continue
                challenge = next((c for c in authorization.body.challenges
                                  if isinstance(c.chall, challenges.HTTP01)), None)
                if challenge is None:
                    raise RuntimeError("the ACME server offers no http-01 challenge")
                response, validation = challenge.response_and_validation(account_key)
                token = challenge.chall.encode("token")
                self.tokens[token] = validation
                self.edge.store.put_setting(f"acme_token:{token}", validation)
                answered.append(token)
                client.answer_challenge(challenge, response)
            deadline = dt.datetime.now() + dt.timedelta(seconds=120)
            done = client.poll_and_finalize(order, deadline=deadline)
        finally:
            for token in answered:
                self.tokens.pop(token, None)
                self.edge.store.delete_setting(f"acme_token:{token}")
        return done.fullchain_pem, key_pem.decode()

    def _client(self) -> tuple[Any, Any]:
        import josepy as jose
        from acme import client as acme_client
        from acme import errors, messages
        from cryptography.hazmat.primitives.asymmetric import rsa

        settings = self.edge.settings()
        stored = self.edge.snapshot().settings.get("acme_account")
        if stored and stored.get("directory") == settings["acme_directory"]:
            account_key = jose.JWKRSA.json_loads(self.edge.decrypt(stored["key"]))
        else:
            account_key = jose.JWKRSA(key=rsa.generate_private_key(65537, 2048))
            stored = None
        network = acme_client.ClientNetwork(account_key, user_agent="hyac",
                                            verify_ssl=self._verify(settings["acme_ca_bundle"]))
        directory = acme_client.ClientV2.get_directory(settings["acme_directory"], network)
        client = acme_client.ClientV2(directory, network)
        registration = messages.NewRegistration.from_data(
            email=settings["acme_email"] or None, terms_of_service_agreed=True)
        try:
            client.new_account(registration)
        except errors.ConflictError as exists:  # the key has an account: use it
            network.account = messages.RegistrationResource(uri=exists.location,
                                                            body=messages.Registration())
        if stored is None:
            self.edge.store.put_setting("acme_account", {
                "directory": settings["acme_directory"],
                "key": self.edge.encrypt(account_key.json_dumps())})
        return client, account_key

    def _verify(self, bundle: str) -> Any:
        """``requests``' ``verify``: the system's roots, or a file with the owner's."""
        if not bundle:
            return True
        folder = Path(self.edge.agent.config.data_dir) / "edge"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "acme-ca.pem"
        if not path.exists() or path.read_text() != bundle:
            fd, temp = tempfile.mkstemp(dir=folder)
            with os.fdopen(fd, "w") as handle:
                handle.write(bundle)
            os.replace(temp, path)
        return str(path)


def settings_value(key: str, value: Any) -> Any:
    """An ACME setting as stored, or InvalidInput."""
    from hyac_common.errors import InvalidInput

    if key == "acme_directory":
        if value and (not isinstance(value, str) or not value.startswith(("https://", "http://"))
                      or len(value) > 500):
            raise InvalidInput("acme_directory: the ACME server's directory URL (https://…)")
        return value or ""
    if key == "acme_email":
        if value and (not isinstance(value, str) or "@" not in value or len(value) > 200):
            raise InvalidInput("acme_email: an e-mail address for the ACME account")
        return value or ""
    if key == "acme_ca_bundle":
        if value:
            from cryptography import x509

            try:
                x509.load_pem_x509_certificates(str(value).encode())
            except ValueError:
                raise InvalidInput("acme_ca_bundle: PEM certificates") from None
            if len(value) > 256 * 1024:
                raise InvalidInput("acme_ca_bundle: at most 256 KiB")
        return value or ""
    if key == "acme_renew_before_days":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 36500:
            raise InvalidInput("acme_renew_before_days: days, more than 0")
        return value
    raise InvalidInput(f"unknown setting {key}")


ACME_DEFAULTS: dict[str, Any] = {"acme_directory": "", "acme_email": "", "acme_ca_bundle": "",
                                 "acme_renew_before_days": 30}
