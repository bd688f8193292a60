"""The scheduled advisory refresh runs once per interval across every agent sharing the
store (two services on one database stand for two agents), on SQLite and PostgreSQL."""

from __future__ import annotations

from hyac_agent.store import SqlStore
from hyac_agent.vulns.db import AdvisoryDB
from tests.agent.test_store import store  # noqa: F401 - the fixture: SQLite, then PostgreSQL


def test_one_refresh_per_interval_across_agents(store: SqlStore) -> None:  # noqa: F811
    first, second = AdvisoryDB(store.engine), AdvisoryDB(store.engine)
    start = 1_000_000.0
    assert first.claim_refresh(3600, now=start) is False  # the first start schedules it
    assert second.claim_refresh(3600, now=start + 10) is False  # not due yet
    assert second.claim_refresh(3600, now=start + 3600) is True  # due: one agent takes it
    assert first.claim_refresh(3600, now=start + 3600) is False  # and the other does not
    assert first.claim_refresh(3600, now=start + 7199) is False
    assert first.claim_refresh(3600, now=start + 7200) is True
