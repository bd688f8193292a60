"""Host names: what a domain may be called, and the ``Host`` header of a request."""

from __future__ import annotations

import re

from hyac_common.errors import InvalidInput

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def normalise_host(text: str) -> str:
    """``text`` as a domain name: lower case, IDNA (``bücher.example`` is
    ``xn--bcher-kva.example``), no trailing dot, at least two labels, no address."""
    value = text.strip().rstrip(".") if isinstance(text, str) else ""
    try:
        value = value.encode("idna").decode("ascii").lower() if value else ""
    except UnicodeError:
        value = ""
    labels = value.split(".")
    if (len(value) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels)
            or labels[-1].isdigit()):
        raise InvalidInput(f"invalid domain name {text!r} (like api.example.com)", host=text)
    return value


def request_host(header: str | None) -> str:
    """The name in a ``Host`` header, lower case, without port or trailing dot ('' if none)."""
    if not header:
        return ""
    value = header.strip().lower()
    if value.startswith("["):
        return ""  # an IPv6 literal: never a domain
    return value.split(":", 1)[0].rstrip(".")
