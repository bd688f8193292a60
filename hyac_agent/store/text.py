"""Text a function hands the agent, made fit for any store's text columns."""

from __future__ import annotations

import re

#: what no store keeps in a text column: NUL (PostgreSQL refuses it) and lone surrogates
#: (which no UTF-8 encoder takes; JSON's "\ud800" escapes decode to them)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: a UTF-16 surrogate: in a str that json.loads made, only a lone one (a pair becomes
#: the character it encodes)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with what a store cannot keep replaced by U+FFFD. A worker's text is
    the tenant's bytes: one unstorable line must not fail a write that holds other
    tenants' rows too (a batch of log lines), nor its own."""
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text
