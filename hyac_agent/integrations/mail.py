"""The ``mail`` integration: the SMTP server the agent sends functions' mail through
(``context.mail``), as HYAC_SMTP_URL, HYAC_MAIL_FROM and HYAC_SMTP_TIMEOUT set it, or as
the owner sets it in the store (the password apart from the URL, encrypted)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, ClassVar
from urllib.parse import urlsplit

from hyac_agent.integrations.kinds import IntegrationKind, Setting
from hyac_agent.mail import MailSettings, _address, check_server, deliver
from hyac_common.errors import IntegrationFailed, InvalidInput, MailFailed


def _no_password(url: str) -> str:
    if urlsplit(url).password is not None:
        raise InvalidInput("setting 'url' must not carry the password (it would be stored in "
                           "clear): give it as the password setting")
    return url


def mask_password(url: Any) -> Any:
    """``url`` with its password (if any) shown as ``***``."""
    if not isinstance(url, str) or not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{netloc[2]}").geturl()


def settings_of(values: Mapping[str, Any]) -> MailSettings | None:
    """The SMTP settings these values make (None: no URL, no mail); InvalidInput."""
    settings = MailSettings.parse(values["url"] or "", values["mail_from"] or "",
                                  float(values["timeout"]))
    if settings is not None and values.get("password"):
        settings = dataclasses.replace(settings, password=values["password"])
    return settings


class MailIntegration(IntegrationKind):
    name = "mail"
    title = "Mail (SMTP)"
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("url", "smtp://user@host:587 (STARTTLS) or smtps://user@host:465; "
                "?starttls=yes|no, ?cafile=PATH", env="HYAC_SMTP_URL",
                display=mask_password, accept=_no_password),
        Setting("password", "the SMTP user's password", secret=True),
        Setting("mail_from", "the sender of the agent's mail ('Hyac <noreply@example.com>')",
                env="HYAC_MAIL_FROM"),
        Setting("timeout", "seconds per SMTP connect, command or reply", type="float",
                default=20.0, env="HYAC_SMTP_TIMEOUT", minimum=0.001),
    )

    def configured(self, values: Mapping[str, Any]) -> bool:
        return bool(values.get("url"))

    def check(self, values: Mapping[str, Any], old: Mapping[str, Any]) -> None:
        settings_of(values)  # InvalidInput naming what is wrong

    def probe(self, values: Mapping[str, Any], args: Mapping[str, Any]) -> str:
        settings = settings_of(values)
        if settings is None:
            raise InvalidInput("mail is not configured: set its url")
        unknown = sorted(set(args) - {"to"})
        if unknown:
            raise InvalidInput(f"the mail test takes only 'to', not {unknown[0]!r}")
        try:
            if not args.get("to"):
                return check_server(settings)
            _, to = _address(args["to"], "to")
            refused = deliver(settings, _test_message(settings, to), [to])
        except MailFailed as exc:
            raise IntegrationFailed(exc.message) from None
        if refused:
            raise IntegrationFailed(f"the SMTP server refused {to}: {refused[to]}")
        return f"a test message went to {to} through {settings.host}:{settings.port}"


def _test_message(settings: MailSettings, to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{settings.sender_name or 'Hyac'} <{settings.sender}>"
    message["To"] = to
    message["Subject"] = "Hyac test message"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2])
    message.set_content("This is a test message from your Hyac agent: its mail settings work.\n")
    return message


def mail_settings(values: Callable[[], Mapping[str, Any]]) -> Callable[[], MailSettings | None]:
    """What the Mailer reads at each send: the settings in effect, parsed once per change.
    Settings the store made unusable (they were checked when set) count as none."""
    seen: list[tuple[tuple[Any, ...], MailSettings | None]] = []

    def current() -> MailSettings | None:
        now = values()
        key = tuple(sorted((k, str(v)) for k, v in now.items()))
        if seen and seen[0][0] == key:
            return seen[0][1]
        try:
            parsed = settings_of(now)
        except InvalidInput:
            parsed = None
        seen[:] = [(key, parsed)]
        return parsed

    return current
