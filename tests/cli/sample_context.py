# ruff: noqa  (written on purpose in several styles the stub generator must read)
"""A sample context module exercising what the stub generator must handle."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Optional, overload

from somewhere_else import Gadget  # not stdlib: a stub cannot follow it

if TYPE_CHECKING:
    from decimal import Decimal

SHIM_NAMES = ("Context", "Reply")
TIMEOUT: float = 30.0
"""Default timeout in seconds."""
Headers = Mapping[str, str]
_CACHE: dict[str, Any] = {}
loaded_at = os.getpid()


class _Base:
    """Private base whose public members belong to its public subclasses."""

    def shared(self, x: int = 1) -> int:
        """Shared helper."""
        return x

    def overridden(self) -> str:
        return "base"

    def _hidden(self) -> None:
        pass


class _Secret:
    pass


class Reply(_Base):
    """A reply."""

    status: int
    """The status."""
    kind: Literal["json", "text"] = "json"

    def __init__(self, status: int = 200, body: Any = b"", *, headers: Optional[Headers] = None,
                 when: float = os.getpid()) -> None:
        self.status = status
        self.body = body
        self.extra: list[str] = []
        self._private = 1

    def overridden(self) -> str:
        """The subclass's own."""
        return "reply"

    @property
    def size(self) -> int:
        """Body size."""
        return len(self.body)

    @size.setter
    def size(self, value: int) -> None:
        raise AttributeError(value)

    @staticmethod
    def parse(text: "str") -> "Reply":
        return Reply(body=json.loads(text))

    @classmethod
    def empty(cls, *args: Any, **kwargs: Any) -> Reply:
        return cls()

    def secret(self) -> _Secret:
        return _Secret()

    def gadget(self) -> Gadget:
        return Gadget()

    def money(self) -> Decimal:
        raise NotImplementedError

    def _helper(self) -> None:
        pass


class Context:
    """The context."""

    reply_class = Reply
    Nested = None

    class Info:
        """Nested public class."""

        name: str

    async def fetch(self, url: str, /, timeout: float = TIMEOUT, *rest: str, retries: int = 3,
                    **options: str) -> bytes:
        """Fetch a URL.

        Over several lines, with a \\ backslash and \"\"\"quotes\"\"\".
        """
        return b""

    @overload
    def get(self, key: str) -> Any: ...
    @overload
    def get(self, key: str, default: int) -> int: ...
    def get(self, key: str, default: Any = None) -> Any:
        return default


def helper(ctx: Context) -> None:
    """A public module-level function."""


def _private_helper() -> None:
    pass
