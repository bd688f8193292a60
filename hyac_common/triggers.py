"""What starts a function besides a call: schedules, events and inbound webhooks.

The wire models the CLI and the agent share, and the one check of a cron line and a
timezone (hyac.toml, ``hyac schedule add`` and the API all go through ``check_cron``).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hyac_common.errors import InvalidInput
from hyac_common.names import validate_name

CATCH_UP = ("once", "skip")
STORAGE_EVENTS = ("put", "delete")
TASK_EVENTS = ("succeeded", "dead")
WEBHOOK_SCHEMES = ("hmac-sha256", "github", "stripe")
#: cron aliases croniter understands, beside 5 fields (minute first) or 6 (second first)
MAX_CRON = 200
CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def check_cron(line: object) -> str:
    """``line`` if it is a cron line Hyac runs, else InvalidInput saying why.

    Five fields (minute hour day month weekday), or six with seconds first
    (``*/10 * * * * *``), or an alias such as ``@hourly``."""
    # Imported here: the CLI loads this module on every manifest read.
    from croniter import CroniterBadDateError, croniter

    if not isinstance(line, str) or not line.strip():
        raise InvalidInput("a schedule must be a cron line such as \"*/5 * * * *\"")
    if len(line) > MAX_CRON:
        raise InvalidInput(f"a cron line is at most {MAX_CRON} characters")
    text = " ".join(line.split())
    fields = text.split(" ")
    if text.startswith("@"):
        if text not in CRON_ALIASES:
            raise InvalidInput(f"unknown cron alias {text!r} (one of {', '.join(CRON_ALIASES)})")
        return text
    if len(fields) not in (5, 6):
        raise InvalidInput(
            f"invalid cron line {text!r}: expected 5 fields (minute hour day month weekday) "
            "or 6 with seconds first"
        )
    if not croniter.is_valid(text, second_at_beginning=len(fields) == 6):
        raise InvalidInput(f"invalid cron line {text!r}")
    try:  # valid fields that no date has (February 30th) would never run
        croniter(text, 0, second_at_beginning=len(fields) == 6).get_next(float)
    except CroniterBadDateError:
        raise InvalidInput(f"cron line {text!r} matches no date: it would never run") from None
    return text


def check_timezone(name: object) -> str:
    """An IANA timezone name the agent knows (``Europe/Paris``, ``UTC``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name or len(name) > 64 or ".." in name \
            or name.startswith("/"):
        raise InvalidInput(f"unknown timezone {str(name)[:64]!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown timezone {name!r} (an IANA name such as \"Europe/Paris\" or \"UTC\")"
        ) from None
    return name


def describe_trigger(trigger: dict[str, Any]) -> str:
    """How a task's trigger is named to people: "schedule sch_… (tick 2026-…Z)"."""
    import time

    text = f"{trigger.get('kind')} {trigger.get('id')}"
    if trigger.get("event"):
        text += f" {trigger['event']}"
    if isinstance(trigger.get("tick"), (int, float)):
        text += time.strftime(" (tick %Y-%m-%dT%H:%M:%SZ)", time.gmtime(trigger["tick"]))
    if trigger.get("manual"):
        text += " (run by hand)"
    if trigger.get("depth", 0) > 1:
        text += f" (event depth {trigger['depth']})"
    return text


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class StorageSubscription(BaseModel):
    """``storage = { events = ["put"], prefix = "uploads/" }``: objects of the tenant."""

    model_config = ConfigDict(extra="forbid")

    events: list[Literal["put", "delete"]] = Field(
        default_factory=lambda: ["put", "delete"], min_length=1  # type: ignore[arg-type]
    )
    prefix: str = Field("", max_length=1024, description="only keys that start with it")


class TaskSubscription(BaseModel):
    """``task = { function = "report", events = ["dead"] }``: outcomes of another function's
    tasks, in the same tenant."""

    model_config = ConfigDict(extra="forbid")

    function: str
    events: list[Literal["succeeded", "dead"]] = Field(
        default_factory=lambda: ["succeeded", "dead"], min_length=1  # type: ignore[arg-type]
    )

    @field_validator("function")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return validate_name(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None


class EventSubscriptions(BaseModel):
    """The ``[functions.NAME.on]`` table: each key one subscription or a list of them."""

    model_config = ConfigDict(extra="forbid")

    storage: list[StorageSubscription] = Field(default_factory=list)
    task: list[TaskSubscription] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: _one_or_many(item) for key, item in value.items()}
        return value


# -- the API --------------------------------------------------------------------------


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: str
    cron: str
    timezone: str = "UTC"
    catch_up: Literal["once", "skip"] = "once"


class ScheduleInfo(BaseModel):
    id: str
    function: str
    cron: str
    timezone: str
    catch_up: str
    paused: bool
    source: Literal["manifest", "api"] = Field(description="hyac.toml, or hyac schedule add")
    next_run_at: Optional[float] = None
    last_tick: Optional[float] = None
    last_task_id: Optional[str] = None
    created_at: float


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: str = Field(description="the function the events run")
    source: Literal["storage", "task"]
    events: list[str] = Field(default_factory=list, description="empty: all of the source's")
    prefix: str = Field("", max_length=1024, description="storage: only keys with this prefix")
    watched: Optional[str] = Field(None, description="task: the function whose tasks it watches")


class SubscriptionInfo(BaseModel):
    id: str
    function: str
    source: Literal["storage", "task"]
    events: list[str]
    prefix: str = ""
    watched: Optional[str] = None
    origin: Literal["manifest", "api"]
    last_task_id: Optional[str] = None
    created_at: float


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: str
    scheme: Literal["hmac-sha256", "github", "stripe"] = "hmac-sha256"
    secret: Optional[str] = Field(
        None, min_length=8, max_length=256, description="empty: the agent makes one"
    )


class WebhookInfo(BaseModel):
    id: str
    function: str
    scheme: str
    path: str = Field(description="POST here (on the agent's URL); no token needed")
    last_task_id: Optional[str] = None
    created_at: float


class WebhookCreated(WebhookInfo):
    secret: str = Field(description="shown this once; stored encrypted")


class FunctionTriggers(BaseModel):
    """Every trigger of one function, for the console and ``hyac schedule ls``."""

    function: str
    schedules: list[ScheduleInfo] = Field(default_factory=list)
    subscriptions: list[SubscriptionInfo] = Field(default_factory=list)
    webhooks: list[WebhookInfo] = Field(default_factory=list)
