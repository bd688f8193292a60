"""Validation of the names users give to functions and tenants."""

from __future__ import annotations

import re

from hyac_common.errors import InvalidInput

MAX_NAME_LENGTH = 63
# A DNS label: it ends up in URLs, container names and file names.
_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")


def validate_name(name: str, kind: str = "function") -> str:
    """Return ``name`` if it is a valid function or tenant name, else raise InvalidInput."""
    if not isinstance(name, str) or name == "":
        raise InvalidInput(f"invalid {kind} name: it is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"invalid {kind} name {name[:20]!r}...: longer than {MAX_NAME_LENGTH} characters"
        )
    if not name.isascii():
        raise InvalidInput(f"invalid {kind} name {name!r}: only ASCII letters, digits, '-' and '_'")
    if "/" in name or "\\" in name or ".." in name:
        raise InvalidInput(f"invalid {kind} name {name!r}: path separators and '..' are not allowed")
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"invalid {kind} name {name!r}: use lower-case letters, digits, '-' and '_', "
            "starting and ending with a letter or digit"
        )
    return name
