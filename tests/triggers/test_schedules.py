"""Schedules through the API, run by the scheduler with an injected clock: one task per
tick with the trigger recorded, missed ticks caught up once or skipped, pause and
resume, hyac.toml schedules following the active version, and another tenant kept out."""

from __future__ import annotations

import pytest

from tests.tenancy.conftest import Platform
from tests.triggers.conftest import agent_of, on_loop
from tests.waiting import eventually

HELLO = "def main(context):\n    return {'body': context.request.json()}\n"
#: a tick the wall clock will not reach during the tests: the injected clock runs it
YEARLY = "0 0 1 1 *"


def _run_due(platform: Platform, now: float, tenant: str) -> list[str]:
    """The tasks of ``tenant`` that the scheduler makes at ``now`` (the module's other
    tests leave schedules of their own tenants, due at the same ticks)."""
    made = on_loop(platform, agent_of(platform).triggers.scheduler.run_due(now))
    with platform.owner(tenant) as client:
        mine = {t["id"] for t in client.get("/v1/tasks", params={"limit": 1000}).json()}
    return [task_id for task_id in made if task_id in mine]


def _add(platform: Platform, tenant: str, **body: object) -> dict:
    with platform.owner(tenant) as client:
        answer = client.post("/v1/schedules", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_each_tick_runs_once_with_its_trigger_recorded(platform: Platform) -> None:
    platform.tenant("sched")
    assert platform.deploy("tick", HELLO, "sched").status_code == 201
    schedule = _add(platform, "sched", function="tick", cron=YEARLY, timezone="Europe/Paris")
    tick = schedule["next_run_at"]
    made = _run_due(platform, tick + 1, "sched")
    assert len(made) == 1
    assert _run_due(platform, tick + 2, "sched") == []  # the same tick is not run twice
    with platform.owner("sched") as client:
        task = eventually(lambda: (t := client.get(f"/v1/tasks/{made[0]}").json())
                          ["status"] == "succeeded" and t)
        shown = client.get(f"/v1/schedules/{schedule['id']}").json()
        logs = client.get("/v1/logs", params={"function": "tick"}).json()
    assert task["trigger"] == {"kind": "schedule", "id": schedule["id"], "tick": tick}
    assert shown["last_task_id"] == made[0] and shown["last_tick"] == tick
    assert shown["next_run_at"] > tick + 300 * 86400  # next year's
    assert any(f"schedule {schedule['id']}" in line["message"] and made[0] in line["message"]
               for line in logs)


@pytest.mark.parametrize(("catch_up", "runs"), [("once", 1), ("skip", 0)])
def test_missed_ticks_run_once_late_or_are_skipped(
    platform: Platform, catch_up: str, runs: int
) -> None:
    platform.tenant("late")
    assert platform.deploy("minutely", HELLO, "late").status_code in (200, 201)
    schedule = _add(platform, "late", function="minutely", cron="* * * * *", catch_up=catch_up)
    # The agent was away for an hour: sixty ticks were missed.
    made = _run_due(platform, schedule["next_run_at"] + 3600 + 5, "late")
    assert len(made) == runs
    with platform.owner("late") as client:
        after = client.get(f"/v1/schedules/{schedule['id']}").json()
        client.delete(f"/v1/schedules/{schedule['id']}")
    assert after["next_run_at"] > schedule["next_run_at"] + 3600  # goes on from now


def test_paused_schedule_does_not_run_and_resumes_from_the_next_tick(platform: Platform) -> None:
    platform.tenant("pause")
    assert platform.deploy("p", HELLO, "pause").status_code == 201
    schedule = _add(platform, "pause", function="p", cron=YEARLY)
    with platform.owner("pause") as client:
        paused = client.post(f"/v1/schedules/{schedule['id']}/pause").json()
        assert paused["paused"] is True and paused["next_run_at"] is None
        assert _run_due(platform, schedule["next_run_at"] + 1, "pause") == []
        resumed = client.post(f"/v1/schedules/{schedule['id']}/resume").json()
    assert resumed["paused"] is False and resumed["next_run_at"] == schedule["next_run_at"]
    assert len(_run_due(platform, schedule["next_run_at"] + 1, "pause")) == 1


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"function": "f", "cron": "61 * * * *"}, 400, "invalid cron line"),
    ({"function": "f", "cron": "* * *"}, 400, "expected 5 fields"),
    ({"function": "f", "cron": "@sometimes"}, 400, "unknown cron alias"),
    ({"function": "f", "cron": "0 0 30 2 *"}, 400, "matches no date"),
    ({"function": "f", "cron": "1," * 5000 + "2 * * * *"}, 400, "at most 200 characters"),
    ({"function": "f", "cron": "*/5 * * * *", "timezone": "Mars/Olympus"}, 400,
     "unknown timezone"),
    ({"function": "missing", "cron": "*/5 * * * *"}, 404, "not found"),
    ({"function": "f", "cron": "*/5 * * * *", "catch_up": "always"}, 422, "catch_up"),
])
def test_bad_schedules_are_refused_and_nothing_is_saved(
    platform: Platform, body: dict, status: int, words: str
) -> None:
    platform.tenant("bad")
    assert platform.deploy("f", HELLO, "bad").status_code in (200, 201)
    with platform.owner("bad") as client:
        answer = client.post("/v1/schedules", json=body)
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"]["message"]
        assert client.get("/v1/schedules").json() == []


def test_hyac_toml_schedule_follows_the_active_version(platform: Platform) -> None:
    platform.tenant("manifest")
    with_schedule = platform.deploy("m", HELLO, "manifest", schedule="*/5 * * * *",
                                    timezone="Asia/Tokyo", catch_up="skip")
    assert with_schedule.status_code == 201, with_schedule.text
    with platform.owner("manifest") as client:
        [listed] = client.get("/v1/schedules").json()
        assert (listed["cron"], listed["timezone"], listed["catch_up"], listed["source"]) == (
            "*/5 * * * *", "Asia/Tokyo", "skip", "manifest")
        # hyac.toml's schedule is removed in hyac.toml, not here
        assert client.delete(f"/v1/schedules/{listed['id']}").status_code == 409
        # A bad cron line in a deploy is refused whole: no version, the schedule unchanged.
        refused = platform.deploy("m", HELLO + "# v2\n", "manifest", schedule="*/5 * *")
        assert refused.status_code in (400, 422) and "cron" in refused.text
        assert [v["version"] for v in client.get("/v1/functions/m/versions").json()] == [1]
        assert client.get("/v1/schedules").json() == [listed]
        assert platform.deploy("m", HELLO + "# v2\n", "manifest").status_code == 201
        assert client.get("/v1/schedules").json() == []
        assert client.post("/v1/functions/m/rollback", json={"version": 1}).status_code == 200
        [back] = client.get("/v1/schedules").json()
        assert back["cron"] == "*/5 * * * *"
        assert client.delete("/v1/functions/m").status_code == 200
        assert client.get("/v1/schedules").json() == []


def test_another_tenant_cannot_see_pause_run_or_remove_a_schedule(platform: Platform) -> None:
    platform.tenant("mine")
    platform.tenant("theirs")
    assert platform.deploy("job", HELLO, "mine").status_code == 201
    schedule = _add(platform, "mine", function="job", cron=YEARLY)
    intruder = platform.user("mallory", "theirs", "admin")
    with platform.http(intruder, "theirs") as client:
        assert client.get("/v1/schedules").json() == []
        assert client.get("/v1/triggers").json() == []
        for verb, path in [("GET", ""), ("POST", "/pause"), ("POST", "/run"), ("DELETE", "")]:
            answer = client.request(verb, f"/v1/schedules/{schedule['id']}{path}")
            assert answer.status_code == 404, (verb, path, answer.text)
    with platform.http(intruder, "mine") as client:  # its token is not for this tenant
        assert client.get("/v1/schedules").status_code == 403
        assert client.post(f"/v1/schedules/{schedule['id']}/run").status_code == 403
    with platform.owner("mine") as client:
        still = client.get(f"/v1/schedules/{schedule['id']}").json()
    assert still["paused"] is False and still["last_task_id"] is None


def test_run_now_makes_a_task_a_viewer_cannot(platform: Platform) -> None:
    platform.tenant("runnow")
    assert platform.deploy("r", HELLO, "runnow").status_code == 201
    schedule = _add(platform, "runnow", function="r", cron=YEARLY)
    viewer = platform.user("vera", "runnow", "viewer")
    with platform.http(viewer, "runnow") as client:
        assert client.get("/v1/schedules").status_code == 200
        assert client.post(f"/v1/schedules/{schedule['id']}/run").status_code == 403
    with platform.owner("runnow") as client:
        answer = client.post(f"/v1/schedules/{schedule['id']}/run")
        assert answer.status_code == 202, answer.text
        task = client.get(f"/v1/tasks/{answer.json()['task_id']}").json()
    assert task["trigger"]["kind"] == "schedule" and task["trigger"]["manual"] is True


def test_a_removed_tenant_takes_its_triggers_and_the_changes_are_audited(
    platform: Platform,
) -> None:
    platform.tenant("gone")
    assert platform.deploy("f", HELLO, "gone").status_code == 201
    schedule = _add(platform, "gone", function="f", cron=YEARLY)
    with platform.owner("gone") as client:
        hook = client.post("/v1/webhooks", json={"function": "f"}).json()
        client.post(f"/v1/schedules/{schedule['id']}/pause")
        actions = [(r["action"], r["target"]) for r in client.get("/v1/audit").json()]
    assert ("schedule.add", None) in actions and ("webhook.add", None) in actions
    assert ("schedule.pause", schedule["id"]) in actions
    with platform.owner() as client:
        assert client.delete("/v1/tenants/gone").status_code == 204
    platform.tenant("gone")  # the same name again, the same function again
    assert platform.deploy("f", HELLO, "gone").status_code == 201
    with platform.owner("gone") as client:
        assert client.get("/v1/triggers").json() == []
        assert client.post(hook["path"], content=b"{}").status_code == 404


def test_a_schedule_held_back_by_the_quota_keeps_one_task_waiting(platform: Platform) -> None:
    platform.tenant("pile")
    assert platform.deploy("f", HELLO, "pile").status_code == 201
    with platform.owner("pile") as client:
        assert client.put("/v1/quotas", json={"values": {"executions_per_day": 1}}
                          ).status_code == 200
        assert client.post("/v1/functions/f/invoke", json={}).status_code == 200  # used up
    schedule = _add(platform, "pile", function="f", cron=YEARLY)
    [waiting] = _run_due(platform, schedule["next_run_at"] + 1, "pile")
    with platform.owner("pile") as client:
        eventually(lambda: (t := client.get(f"/v1/tasks/{waiting}").json())["status"] == "queued"
                   and t["error"] and t["error"]["code"] == "quota_exceeded")
        upcoming = client.get(f"/v1/schedules/{schedule['id']}").json()["next_run_at"]
        assert _run_due(platform, upcoming + 1, "pile") == []  # the next tick: still waiting
        assert [t["id"] for t in client.get("/v1/tasks", params={"function": "f"}).json()] \
            == [waiting]
        logs = client.get("/v1/logs", params={"function": "f"}).json()
    assert any(f"previous task {waiting} still waits" in line["message"] for line in logs)


def test_a_broken_schedule_does_not_stop_the_others(platform: Platform) -> None:
    from hyac_agent.triggers import tables as t

    platform.tenant("broken")
    assert platform.deploy("f", HELLO, "broken").status_code == 201
    good = _add(platform, "broken", function="f", cron=YEARLY)
    store = agent_of(platform).triggers.service.store
    # A row no agent would write (an older release's cron syntax, a hand edit), due first.
    store.add(t.schedules, {**{k: good[k] for k in ("function", "timezone", "catch_up")},
                            "id": "sch_broken", "tenant": "broken", "cron": "not a cron line",
                            "paused": False, "origin": "api", "created_at": 0.0,
                            "next_run_at": good["next_run_at"] - 1})
    try:
        assert len(_run_due(platform, good["next_run_at"] + 1, "broken")) == 1
    finally:
        store.remove(t.schedules, "broken", "sch_broken")


def test_deploys_of_one_function_at_once_make_one_schedule(platform: Platform) -> None:
    """As two agents would, each following the same new version at the same moment.
    (Whether the writes really interleave is up to the threads; the ids that the store's
    primary key keeps unique are what makes the outcome certain.)"""
    import asyncio

    from hyac_common.wire import FunctionConfig

    platform.tenant("race")
    assert platform.deploy("f", HELLO, "race").status_code == 201
    config = FunctionConfig(schedule="*/5 * * * *", on={"storage": [{"prefix": "a/"},
                                                                    {"prefix": "b/"}]})
    service = agent_of(platform).triggers.service

    async def together() -> None:
        await asyncio.gather(*(service.follow_version("race", "f", config) for _ in range(4)))

    on_loop(platform, together())
    with platform.owner("race") as client:
        [entry] = client.get("/v1/triggers").json()
    assert len(entry["schedules"]) == 1
    assert sorted(s["prefix"] for s in entry["subscriptions"]) == ["a/", "b/"]
