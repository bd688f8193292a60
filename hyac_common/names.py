"""Validation of the names users give to functions, tenants and storage objects."""

from __future__ import annotations

import re

from hyac_common.errors import InvalidInput

MAX_NAME_LENGTH = 63
# A DNS label: it ends up in URLs, container names and file names.
_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")
# The gateway serves /{tenant}/{function}; the API lives under /v1, the console under /console.
RESERVED_TENANT_NAMES = frozenset({"v1", "console"})


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
    if kind == "tenant" and name in RESERVED_TENANT_NAMES:
        raise InvalidInput(f"invalid tenant name {name!r}: it is reserved (the agent serves /{name} itself)")
    return name


MAX_OBJECT_KEY_BYTES = 1024


def validate_object_key(key: object) -> str:
    """Return ``key`` if it names a storage object, else raise InvalidInput.

    Keys are relative paths: ``/`` separates folders, but a key may not start with one,
    and ``.`` or ``..`` segments are refused (HTTP clients would rewrite them in URLs).
    """
    if not isinstance(key, str) or key == "":
        raise InvalidInput("invalid object key: it must be a non-empty string")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_OBJECT_KEY_BYTES:
        raise InvalidInput(f"invalid object key {key[:40]!r}...: longer than "
                           f"{MAX_OBJECT_KEY_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in key):
        raise InvalidInput(f"invalid object key {key!r}: control characters are not allowed")
    if key.startswith("/"):
        raise InvalidInput(f"invalid object key {key!r}: it must not start with '/'")
    if any(part in (".", "..") for part in key.split("/")):
        raise InvalidInput(f"invalid object key {key!r}: '.' and '..' segments are not allowed")
    return key
