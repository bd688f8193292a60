"""A real SMTP server (aiosmtpd) for the mail tests, run as a process of its own.

    python smtp_server.py INBOX PORT [--starttls CERT KEY] [--smtps CERT KEY] [--auth USER:PASS]

Every message it takes is written to INBOX as N.eml (the bytes received) and N.json (the
envelope, and whether the session was authenticated and encrypted). ``--starttls``
offers STARTTLS and requires it before MAIL; ``--auth`` requires AUTH (over TLS only).
Prints ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import json
import ssl
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Inbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.count += 1
        stem = self.directory / f"{self.count:04d}"
        stem.with_suffix(".eml").write_bytes(envelope.original_content or envelope.content)
        record = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                  "authenticated": bool(session.authenticated), "tls": server.transport.get_extra_info("ssl_object") is not None}
        stem.with_suffix(".json").write_text(json.dumps(record))
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("inbox", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--smtps", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--auth", metavar="USER:PASS")
    options = parser.parse_args()
    options.inbox.mkdir(parents=True, exist_ok=True)

    def tls(pair: list[str] | None) -> ssl.SSLContext | None:
        if pair is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*pair)
        return context

    kwargs: dict[str, Any] = {}
    if options.starttls:
        kwargs.update(tls_context=tls(options.starttls), require_starttls=True)
    if options.auth:
        user, _, password = options.auth.partition(":")

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          auth_data: Any) -> AuthResult:
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
                  and auth_data.password.decode() == password)
            return AuthResult(success=ok)

        # aiosmtpd counts only STARTTLS as TLS for AUTH; with --smtps every byte is encrypted.
        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=not options.smtps)
    controller = Controller(Inbox(options.inbox), hostname="127.0.0.1", port=options.port,
                            ssl_context=tls(options.smtps), server_hostname="localhost", **kwargs)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
