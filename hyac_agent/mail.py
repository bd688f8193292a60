"""Mail from functions: ``context.mail.send`` is the host call ``mail.send``.

The agent checks the message, builds it and speaks SMTP itself; the sandbox never needs
the network for it. Every message goes from the agent's own sender (``HYAC_MAIL_FROM``;
a function chooses at most the display name), carries ``X-Hyac-Tenant`` naming the
sending tenant, and counts towards that tenant's ``mails_per_day`` quota once the SMTP
server has taken it.

Settings (see hyac_agent/config.py): ``HYAC_SMTP_URL`` such as
``smtp://user:pass@host:587`` (STARTTLS whenever the server offers it; ``?starttls=yes``
requires it, ``?starttls=no`` never tries) or ``smtps://user:pass@host:465`` (TLS from the
first byte), with user and password URL-encoded and ``?cafile=PATH`` to trust a private
CA; ``HYAC_MAIL_FROM``; ``HYAC_SMTP_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import mimetypes
import re
import smtplib
import ssl
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from hyac_common.errors import InvalidInput, MailFailed, MailNotConfigured

MAX_RECIPIENTS = 50  # to + cc + bcc of one message
MAX_REPLY_TO = 10
MAX_ATTACHMENTS = 20
MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # text + html + attachments, decoded
MAX_SUBJECT = 500
MAX_NAME = 200
MAX_FILENAME = 255
MAX_ADDRESS = 254
DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
#: SMTP sessions at once, in threads of their own: a slow or silent server holds these,
#: never the threads the rest of the agent works in
MAX_SENDING = 8
#: messages of one tenant being built or sent at once (its others wait their turn)
MAX_SENDING_PER_TENANT = 4

# An ASCII addr-spec with a dotted domain: what every SMTP server takes without SMTPUTF8.
_ADDRESS_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$"
)
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_CONTENT_TYPE_RE = re.compile(f"^{_TOKEN}/{_TOKEN}$")
_SEND_ARGS = {"to", "cc", "bcc", "subject", "text", "html", "reply_to", "attachments", "from_name"}


@dataclass(frozen=True)
class MailSettings:
    """Where and as whom the agent sends mail (parsed from HYAC_SMTP_URL and HYAC_MAIL_FROM)."""

    host: str
    port: int
    implicit_tls: bool  # smtps://
    starttls: str  # smtp:// only: "auto" (when offered), "yes" (required) or "no"
    sender: str  # the envelope and From address
    sender_name: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    timeout: float = 20.0

    @classmethod
    def parse(cls, url: str, mail_from: str, timeout: float) -> MailSettings | None:
        """The settings, or None when ``url`` is empty; InvalidInput naming what is wrong."""
        if not url.strip():
            return None
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise InvalidInput("HYAC_SMTP_URL must start with smtp:// or smtps://")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise InvalidInput("HYAC_SMTP_URL has an invalid port") from None
        if not parts.hostname:
            raise InvalidInput("HYAC_SMTP_URL names no host (smtp://user:pass@host:587)")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"starttls", "cafile"})
        if unknown:
            raise InvalidInput(f"HYAC_SMTP_URL: unknown parameter {unknown[0]!r} (known: starttls, cafile)")
        starttls = {"auto": "auto", "yes": "yes", "true": "yes", "require": "yes",
                    "no": "no", "false": "no"}.get(query.get("starttls", ["auto"])[-1].lower())
        if starttls is None:
            raise InvalidInput("HYAC_SMTP_URL: starttls is auto, yes or no")
        if timeout <= 0:
            raise InvalidInput("HYAC_SMTP_TIMEOUT must be a positive number of seconds")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if not mail_from.strip() and username and _ADDRESS_RE.match(username):
            mail_from = username
        if not mail_from.strip():
            raise InvalidInput("HYAC_MAIL_FROM must name the sender of the agent's mail "
                               "(e.g. 'Hyac <noreply@example.com>')")
        try:
            sender_name, sender = _address(mail_from, "sender")
        except InvalidInput as exc:
            raise InvalidInput(f"HYAC_MAIL_FROM: {exc.message}") from None
        return cls(host=parts.hostname, port=port, implicit_tls=scheme == "smtps",
                   starttls=starttls, sender=sender, sender_name=sender_name, username=username,
                   password=password, cafile=query.get("cafile", [""])[-1] or None,
                   timeout=timeout)


# checking a message ----------------------------------------------------------------------


def _line(value: object, what: str, limit: int) -> str:
    """A string that goes into a header: no line breaks nor control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"mail {what} must be a string")
    if len(value) > limit:
        raise InvalidInput(f"mail {what} is longer than {limit} characters")
    if any(c != "\t" and unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise InvalidInput(f"mail {what} must not contain line breaks or control characters")
    return value


def _address(value: object, what: str) -> tuple[str, str]:
    """(display name, address) of one ``addr`` or ``Name <addr>``."""
    text = _line(value, what, MAX_ADDRESS + MAX_NAME).strip()
    pairs = getaddresses([text]) if text else []
    # Pythons with the strict address parser (3.11.4+, and distributions' backports) answer
    # text they cannot split into addresses with one empty pair, where older ones split it.
    if len(pairs) != 1 or pairs[0] == ("", ""):
        raise InvalidInput(f"mail {what} {text[:80]!r} is not one address (give a list for several)")
    name, address = pairs[0]
    if len(address) > MAX_ADDRESS or not _ADDRESS_RE.match(address):
        raise InvalidInput(f"mail {what} {text[:80]!r} is not a valid email address")
    return name, address


def _addresses(value: object, what: str, limit: int, required: bool = False) -> list[tuple[str, str]]:
    if value is None or value == [] or value == "":
        if required:
            raise InvalidInput(f"mail needs at least one {what} address")
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InvalidInput(f"mail {what} must be an address or a list of addresses")
    if len(items) > limit:
        raise InvalidInput(f"mail {what}: at most {limit} addresses")
    return [_address(item, what) for item in items]


def _header(pairs: list[tuple[str, str]]) -> list[Address]:
    found = []
    for name, address in pairs:
        try:
            found.append(Address(display_name=name, addr_spec=address))
        except (HeaderParseError, ValueError, IndexError):
            raise InvalidInput(f"mail address {address!r} is not valid") from None
    return found


@dataclass
class _Attachment:
    filename: str
    content_type: str
    data: bytes


def _attachments(value: object, budget: int) -> list[_Attachment]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("mail attachments must be a list")
    if len(value) > MAX_ATTACHMENTS:
        raise InvalidInput(f"mail takes at most {MAX_ATTACHMENTS} attachments")
    found: list[_Attachment] = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidInput("each mail attachment is an object with filename, content_type, data_b64")
        filename = _line(item.get("filename"), "attachment filename", MAX_FILENAME)
        if not filename.strip() or "/" in filename or "\\" in filename:
            raise InvalidInput(f"mail attachment filename {filename!r} must be a plain, non-empty name")
        content_type = item.get("content_type") or mimetypes.guess_type(filename)[0] \
            or "application/octet-stream"
        if not isinstance(content_type, str) or not _CONTENT_TYPE_RE.match(content_type):
            raise InvalidInput(f"mail attachment {filename!r}: content type {str(content_type)[:60]!r} "
                               "is not type/subtype")
        data_b64 = item.get("data_b64")
        if not isinstance(data_b64, str):
            raise InvalidInput(f"mail attachment {filename!r} needs data_b64 (its bytes, base64)")
        budget -= len(data_b64) * 3 // 4 - data_b64[-2:].count("=")
        if budget < 0:  # before decoding it
            raise InvalidInput(f"mail is larger than {MAX_MESSAGE_BYTES} bytes (text, html and attachments)")
        try:
            data = base64.b64decode(data_b64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"mail attachment {filename!r}: data_b64 is not valid base64") from None
        found.append(_Attachment(filename, content_type.lower(), data))
    return found


def build_message(settings: MailSettings, tenant: str, args: dict[str, Any]
                  ) -> tuple[EmailMessage, list[str]]:
    """The message a ``mail.send`` asks for and its envelope recipients, or InvalidInput."""
    unknown = sorted(set(args) - _SEND_ARGS)
    if unknown:
        raise InvalidInput(f"mail.send: unknown argument {unknown[0]!r}")
    to = _addresses(args.get("to"), "to", MAX_RECIPIENTS, required=True)
    cc = _addresses(args.get("cc"), "cc", MAX_RECIPIENTS)
    bcc = _addresses(args.get("bcc"), "bcc", MAX_RECIPIENTS)
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise InvalidInput(f"mail has more than {MAX_RECIPIENTS} recipients (to, cc and bcc)")
    reply_to = _addresses(args.get("reply_to"), "reply_to", MAX_REPLY_TO)
    subject = _line(args.get("subject"), "subject", MAX_SUBJECT)
    from_name = args.get("from_name")
    from_name = settings.sender_name if from_name in (None, "") else _line(from_name, "from_name", MAX_NAME)
    text, html = args.get("text"), args.get("html")
    if text is None and html is None:
        raise InvalidInput("mail needs a text or an html body (or both)")
    for body, what in ((text, "text"), (html, "html")):
        if body is not None and not isinstance(body, str):
            raise InvalidInput(f"mail {what} must be a string")
    budget = MAX_MESSAGE_BYTES - len((text or "").encode("utf-8", "replace")) \
        - len((html or "").encode("utf-8", "replace"))
    if budget < 0:
        raise InvalidInput(f"mail is larger than {MAX_MESSAGE_BYTES} bytes (text, html and attachments)")
    attachments = _attachments(args.get("attachments"), budget)

    message = EmailMessage()
    message["From"] = _header([(from_name, settings.sender)])
    message["To"] = _header(to)
    if cc:
        message["Cc"] = _header(cc)
    if reply_to:
        message["Reply-To"] = _header(reply_to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2])
    message["X-Hyac-Tenant"] = tenant
    if text is not None:
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
    else:
        message.set_content(html, subtype="html")
    for item in attachments:
        maintype, _, subtype = item.content_type.partition("/")
        message.add_attachment(item.data, maintype=maintype, subtype=subtype, filename=item.filename)
    recipients: list[str] = []
    for _, address in to + cc + bcc:  # each once; Bcc never becomes a header
        if address.lower() not in (r.lower() for r in recipients):
            recipients.append(address)
    return message, recipients


# sending -------------------------------------------------------------------------------


def deliver(settings: MailSettings, message: EmailMessage, recipients: list[str]) -> dict[str, str]:
    """Send ``message`` over SMTP (blocking); return the recipients the server refused,
    with its reasons. MailFailed if nothing was sent."""
    refused = _session(settings, lambda client: client.send_message(
        message, from_addr=settings.sender, to_addrs=recipients))
    return {address: _reply(*reply) for address, reply in refused.items()}


def check_server(settings: MailSettings) -> str:
    """Connect, secure and sign in as a send would, and send nothing (blocking): one line
    saying what answered, or MailFailed."""
    _session(settings, lambda client: client.noop())
    secured = "TLS" if settings.implicit_tls else (
        "no TLS" if settings.starttls == "no" else "STARTTLS if offered")
    who = f" as {settings.username}" if settings.username else ""
    return f"the SMTP server {settings.host}:{settings.port} took the agent's session{who} ({secured})"


def _session(settings: MailSettings, act: Callable[[smtplib.SMTP], Any]) -> Any:
    """``act(client)`` on a connected, secured and signed-in SMTP session; every
    failure one MailFailed saying what failed."""
    where = f"{settings.host}:{settings.port}"
    try:
        context = ssl.create_default_context(cafile=settings.cafile)
        client: smtplib.SMTP
        if settings.implicit_tls:
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                      context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            client.ehlo()
            if not settings.implicit_tls and settings.starttls != "no":
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif settings.starttls == "yes":
                    raise MailFailed(f"the SMTP server {where} does not offer STARTTLS, which "
                                     "HYAC_SMTP_URL requires (?starttls=yes)")
            if settings.username:
                client.login(settings.username, settings.password or "")
            return act(client)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailFailed(f"the SMTP server {where} refused the agent's credentials: "
                         f"{_reply(exc.smtp_code, exc.smtp_error)}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        reasons = "; ".join(f"{a}: {_reply(*r)}" for a, r in list(exc.recipients.items())[:5])
        raise MailFailed(f"the SMTP server {where} refused every recipient ({reasons})") from None
    except smtplib.SMTPResponseException as exc:
        answer = _reply(exc.smtp_code, exc.smtp_error)
        raise MailFailed(f"the SMTP server {where} answered {answer}") from None
    except (TimeoutError, ConnectionError, smtplib.SMTPServerDisconnected) as exc:
        raise MailFailed(f"cannot reach the SMTP server {where}: {_reason(exc, settings.timeout)}") from None
    except (OSError, smtplib.SMTPException) as exc:  # TLS failures, DNS, no AUTH offered
        raise MailFailed(f"sending through the SMTP server {where} failed: {exc}") from None


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):  # smtplib wraps it
        return f"no answer within {timeout:g} s (HYAC_SMTP_TIMEOUT)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__


class Mailer:
    """``mail.*`` host calls: check, admit by the tenant's quota, send, log one line."""

    def __init__(
        self,
        settings: Callable[[], MailSettings | None],
        admit: Callable[[str], AbstractAsyncContextManager[None]],
        log: Callable[[str, str | None, str], None],
    ) -> None:
        #: the settings in effect, read at each send (they change without a restart)
        self.settings = settings
        #: tenant -> context that admits one message (or raises quota_exceeded), counted if it ends well
        self.admit = admit
        #: (tenant, request id, line): a system log line of the request that sent mail
        self.log = log
        self._executor = ThreadPoolExecutor(MAX_SENDING, thread_name_prefix="hyac-mail")
        self._sending: dict[str, asyncio.Semaphore] = {}

    async def host_call(self, tenant: str, op: str, args: dict[str, Any], request_id: str | None) -> Any:
        if op != "mail.send":
            raise InvalidInput(f"unknown host call {op!r}")
        return await self.send(tenant, args, request_id)

    async def send(self, tenant: str, args: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        """Send one message for ``tenant``; ``{"message_id", "refused"}``."""
        settings = await asyncio.to_thread(self.settings)
        if settings is None:
            raise MailNotConfigured("mail is not configured on this agent: set HYAC_SMTP_URL "
                                    "or `hyac system integrations set mail url=…`")
        loop = asyncio.get_running_loop()
        async with self._sending.setdefault(tenant, asyncio.Semaphore(MAX_SENDING_PER_TENANT)):
            message, recipients = await loop.run_in_executor(
                self._executor, build_message, settings, tenant, args)
            async with self.admit(tenant):
                refused = await loop.run_in_executor(
                    self._executor, deliver, settings, message, recipients)
        message_id = str(message["Message-ID"])
        line = f"mail sent: {message_id} to {len(recipients) - len(refused)} recipient(s)"
        self.log(tenant, request_id, line + (f", {len(refused)} refused" if refused else ""))
        return {"message_id": message_id, "refused": refused}
