"""What an integration kind declares: its settings and how to check and test them.

A kind (``mail``, ``storage``, a notification channel type, …) is a small subclass of
:class:`IntegrationKind` registered with the :class:`~hyac_agent.integrations.service.
IntegrationService` when the agent is built. The service does the rest for every kind
alike: storing (secrets encrypted), the environment winning over the store, showing
(secrets as ``"set"``), auditing through the API, and applying changes without a restart
(consumers read :meth:`IntegrationService.values` when they act, never a copy made at
start).
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from hyac_common.errors import InvalidInput

MAX_TEXT = 2048
_KIND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

SettingType = Literal["str", "int", "float", "bool"]
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class Setting:
    """One setting of a kind."""

    name: str
    help: str
    type: SettingType = "str"
    default: Any = ""
    #: stored encrypted, never shown or returned (``"set"`` when it has a value)
    secret: bool = False
    #: the HYAC_* variable that overrides the stored value (and its AgentConfig field)
    env: str = ""
    #: values allowed (for a str), in the order they are shown
    choices: tuple[str, ...] = ()
    #: how a plain value is shown (e.g. a URL with its password masked)
    display: Callable[[Any], Any] | None = None
    minimum: float | None = None
    #: a further check of a parsed value: returns it (perhaps normalised) or raises
    #: InvalidInput
    accept: Callable[[Any], Any] | None = None

    @property
    def config_field(self) -> str:
        """The AgentConfig field of :attr:`env` (``HYAC_SMTP_URL`` -> ``smtp_url``)."""
        return self.env.removeprefix("HYAC_").lower()

    def parse(self, value: Any) -> Any:
        """``value`` as this setting's type, or InvalidInput naming the setting."""
        what = f"setting {self.name!r}"
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            raise InvalidInput(f"{what} is true or false")
        if self.type in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise InvalidInput(f"{what} must be a number")
            try:
                number = int(value) if self.type == "int" else float(value)
            except ValueError:
                raise InvalidInput(f"{what} must be a number, not {str(value)[:40]!r}") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise InvalidInput(f"{what} must be a finite number")
            if self.minimum is not None and number < self.minimum:
                raise InvalidInput(f"{what} must be at least {self.minimum:g}")
            return number
        if not isinstance(value, str):
            raise InvalidInput(f"{what} must be a string")
        value = value.strip()
        if len(value) > MAX_TEXT:
            raise InvalidInput(f"{what} is longer than {MAX_TEXT} characters")
        if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
            raise InvalidInput(f"{what} must not contain line breaks or control characters")
        if self.choices and value not in self.choices:
            raise InvalidInput(f"{what} is one of {', '.join(self.choices)}, not {value[:40]!r}")
        return self.accept(value) if self.accept is not None and value else value


class IntegrationKind(ABC):
    """An integration: its name, its settings, and what checks and tests them."""

    #: the kind's name in URLs and commands (``/v1/system/integrations/{name}``)
    name: ClassVar[str]
    title: ClassVar[str]
    settings: ClassVar[tuple[Setting, ...]]
    #: ``set`` runs :meth:`probe` on the would-be values and saves nothing if it fails
    probe_on_set: ClassVar[bool] = True

    def setting(self, name: str) -> Setting:
        for setting in self.settings:
            if setting.name == name:
                return setting
        known = ", ".join(s.name for s in self.settings)
        raise InvalidInput(f"{self.name} has no setting {name!r} (known: {known})")

    def configured(self, values: Mapping[str, Any]) -> bool:
        """Whether these values make the integration do anything (shown by ``show``)."""
        return any(values.get(s.name) not in (None, "", s.default) for s in self.settings)

    def check(self, values: Mapping[str, Any], old: Mapping[str, Any]) -> None:  # noqa: B027
        """Refuse (InvalidInput, Conflict) values that cannot work together, or a change
        from ``old`` that would strand something. Nothing is saved if this raises."""

    @abstractmethod
    def probe(self, values: Mapping[str, Any], args: Mapping[str, Any]) -> str:
        """Try the integration for real with ``values`` (blocking; run in a thread):
        one line saying what worked, or IntegrationFailed saying what did not.
        ``args`` are the test's own (``{"to": ADDR}`` for mail); ``{}`` on ``set``."""


def check_kind_name(name: str) -> str:
    if not isinstance(name, str) or not _KIND_NAME.match(name):
        raise InvalidInput(f"invalid integration kind {str(name)[:40]!r}")
    return name
