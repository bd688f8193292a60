"""Two real agents on one PostgreSQL database run a per-second schedule: every tick runs
exactly once, none twice and none skipped, whichever agent got there first.

The agents poll every 0.1 s, so both look at each tick many times; only the guarded move
of the schedule's next tick decides which one runs it."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.agent.test_store import _postgres_database
from tests.conftest import RunningAgent, start_agent
from tests.waiting import eventually

BEAT = "def main(context):\n    return context.request.json()\n"
TICKS = 4


def test_two_agents_on_one_postgresql_run_each_tick_once(isolation: Path) -> None:
    for url in _postgres_database():
        env = {"HYAC_DATABASE_URL": url, "HYAC_SCHEDULER_INTERVAL": "0.1"}
        agents: list[RunningAgent] = []
        try:
            for _ in range(2):  # one data dir, as agents sharing their files
                agents.append(start_agent(isolation / "data", "--insecure-no-sandbox", env=env))
            first, second = agents
            first.deploy("beat", BEAT, schedule="* * * * * *")  # every second

            def ticks(other: RunningAgent = second) -> list[dict] | None:
                with other.client() as client:
                    tasks = client.get("/v1/tasks", params={"function": "beat"}).json()
                return tasks if len(tasks) >= TICKS else None

            eventually(ticks)
            first.deploy("beat", BEAT)  # no schedule: it stops
            with first.client() as client:
                assert client.get("/v1/schedules").json() == []
                tasks = client.get("/v1/tasks", params={"function": "beat", "limit": 1000}).json()
        finally:
            for agent in agents:
                agent.kill(signal.SIGTERM)
        made = sorted(task["trigger"]["tick"] for task in tasks)
        assert len(made) == len(set(made)), f"a tick ran twice: {made}"
        assert made == [made[0] + n for n in range(len(made))], f"a tick was skipped: {made}"
        assert all(task["trigger"]["kind"] == "schedule" for task in tasks)


def test_of_two_agents_that_saw_the_same_tick_only_one_claims_it(isolation: Path) -> None:
    """The guard itself, with the race made certain: both agents read the schedule due
    at the same tick before either moves it on (two engines: two agents' connections)."""
    from sqlalchemy import create_engine

    from hyac_agent.triggers import tables as t
    from hyac_agent.triggers.scheduler import Scheduler
    from hyac_agent.triggers.store import TriggerStore

    for url in _postgres_database():
        stores = [TriggerStore(create_engine(url)) for _ in range(2)]
        try:
            stores[0].create_schema()
            stores[0].add(t.schedules, {
                "id": "sch_race", "tenant": "t", "function": "f", "cron": "* * * * * *",
                "timezone": "UTC", "catch_up": "once", "paused": False, "origin": "api",
                "next_run_at": 1000.0, "created_at": 0.0})
            seen = [store.due_schedules(1000.5, 10) for store in stores]
            assert [[row.next_run_at for row in rows] for rows in seen] == [[1000.0], [1000.0]]
            steps = [Scheduler(store, None, None, None, 1)._next_step(rows[0], 1000.5)  # type: ignore[arg-type]
                     for store, rows in zip(stores, seen, strict=True)]
            assert steps[0] == steps[1] == (1000.0, 1000.0, 1001.0)
            claims = [store.claim_tick("sch_race", *step[1:], step[0]) for store, step in
                      zip(stores, steps, strict=True)]
            assert sorted(claims) == [False, True]
            assert [row.next_run_at for row in stores[1].due_schedules(1001.5, 10)] == [1001.0]
        finally:
            for store in stores:
                store.engine.dispose()
