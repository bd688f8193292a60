"""The parts that need no agent: cron ticks in a timezone, webhook signatures as senders
make them, and the hyac.toml forms of schedules and event subscriptions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hyac_agent.triggers.cron import latest_tick, next_tick
from hyac_agent.triggers.signatures import STRIPE_TOLERANCE, sign, verify
from hyac_common.errors import HyacError, Unauthorized

PARIS = ZoneInfo("Europe/Paris")


def _at(*parts: int) -> float:
    return datetime(*parts, tzinfo=PARIS).timestamp()  # type: ignore[arg-type,misc]


def test_ticks_follow_the_timezone_wall_clock_across_daylight_saving() -> None:
    # 2026-03-29: Paris skips from 02:00 to 03:00. "0 9 * * *" stays 09:00 local time.
    before = next_tick("0 9 * * *", "Europe/Paris", _at(2026, 3, 27, 10, 0))
    after = next_tick("0 9 * * *", "Europe/Paris", before)
    assert datetime.fromtimestamp(before, PARIS).hour == 9
    assert datetime.fromtimestamp(after, PARIS).hour == 9
    assert after - before == 23 * 3600  # the day that had one hour less
    assert next_tick("0 9 * * *", "UTC", 0) == 9 * 3600


def test_six_fields_have_seconds_first_and_latest_tick_is_at_or_before() -> None:
    start = _at(2026, 1, 1, 0, 0)
    assert next_tick("*/10 * * * * *", "UTC", start) == start + 10
    assert latest_tick("*/10 * * * * *", "UTC", start + 25) == start + 20
    assert latest_tick("*/10 * * * * *", "UTC", start + 20) == start + 20
    assert latest_tick("0 * * * *", "UTC", start + 7200 + 59) == start + 7200


@pytest.mark.parametrize("scheme", ["github", "hmac-sha256", "stripe"])
def test_signatures_as_their_senders_make_them(scheme: str) -> None:
    body, now = b'{"id": "evt_1"}', 1_800_000_000
    header = {"github": "x-hub-signature-256", "stripe": "stripe-signature",
              "hmac-sha256": "x-hyac-signature"}[scheme]
    verify(scheme, "k", {header: sign(scheme, "k", body, now)}, body, now)
    for headers in ({}, {header: sign(scheme, "other", body, now)}, {header: "sha256="},
                    {header: sign(scheme, "k", body + b"!", now)}):
        with pytest.raises(Unauthorized):
            verify(scheme, "k", headers, body, now)


def test_stripe_rolling_secrets_and_the_timestamp_tolerance() -> None:
    body, now = b"{}", 1_800_000_000
    old = sign("stripe", "old-secret", body, now).split(",")[1]
    both = f"{sign('stripe', 'new-secret', body, now)},{old}"
    verify("stripe", "old-secret", {"stripe-signature": both}, body, now)
    verify("stripe", "new-secret", {"stripe-signature": both}, body, now)
    stale = sign("stripe", "k", body, now - int(STRIPE_TOLERANCE) - 1)
    with pytest.raises(Unauthorized, match="timestamp"):
        verify("stripe", "k", {"stripe-signature": stale}, body, now)
    with pytest.raises(Unauthorized):  # a signature without its timestamp's part
        verify("stripe", "k", {"stripe-signature": f"t={now},v1=" + "0" * 64}, body, now)


def _manifest(tmp_path: Path, table: str) -> dict:
    from hyac_cli.manifest import load_project

    (tmp_path / "functions").mkdir(exist_ok=True)
    (tmp_path / "functions" / "a.py").write_text("def main(context):\n    return 1\n")
    (tmp_path / "hyac.toml").write_text(f'[project]\nname = "p"\n\n[functions.a]\n{table}')
    return load_project(tmp_path).functions["a"].config


def test_hyac_toml_takes_one_subscription_or_a_list(tmp_path: Path) -> None:
    from hyac_common.wire import FunctionConfig

    config = FunctionConfig(**_manifest(tmp_path, '''schedule = "@hourly"
[functions.a.on]
storage = { prefix = "in/" }
task = [{ function = "b", events = ["dead"] }, { function = "c" }]
'''))
    assert config.schedule == "@hourly" and config.timezone == "UTC" and config.catch_up == "once"
    assert config.on is not None
    assert [(s.events, s.prefix) for s in config.on.storage] == [(["put", "delete"], "in/")]
    assert [(t.function, t.events) for t in config.on.task] == [
        ("b", ["dead"]), ("c", ["succeeded", "dead"])]


@pytest.mark.parametrize(("table", "words"), [
    ('schedule = "* * *"', "schedule of function 'a': must be a cron line"),
    ('schedule = "*/5 * * * *"\ntimezone = "Moon/Base"', "timezone of function 'a'"),
    ('catch_up = "always"', 'must be "once" or "skip"'),
    ('[functions.a.on]\nstorage = { events = ["made"] }', "on of function 'a'"),
    ('[functions.a.on]\nqueue = { }', "on of function 'a'"),
    ('[functions.a.on]\ntask = { function = "../b" }', "on of function 'a'"),
])
def test_hyac_toml_mistakes_name_the_key_and_line(tmp_path: Path, table: str, words: str) -> None:
    with pytest.raises(HyacError) as caught:
        _manifest(tmp_path, table)
    assert words in str(caught.value) and "hyac.toml:" in str(caught.value)
