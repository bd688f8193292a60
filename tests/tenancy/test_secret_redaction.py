"""Redaction of a tenant's secrets across changes: a value stays redacted while a worker
that may hold it lives (SecretService.hold), and a new value is redacted at once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from hyac_agent.tenancy.secrets import SecretService
from hyac_agent.tenancy.store import TenancyStore


def service(tmp_path: Path) -> SecretService:
    store = TenancyStore(create_engine(f"sqlite:///{tmp_path / 'tenancy.db'}"))
    store.create_schema()
    return SecretService(store, tmp_path)


def test_a_replaced_value_stays_redacted_until_its_workers_are_gone(tmp_path: Path) -> None:
    secrets = service(tmp_path)
    secrets.set("t", "KEY", "first-value")
    line = "first-value second-value"
    release_old = secrets.hold("t")              # a worker that may read first-value
    secrets.set("t", "KEY", "second-value")
    assert secrets.redact("t", line) == "*** ***"
    release_new = secrets.hold("t")              # made after the change: reads only the new
    release_old()
    assert secrets.redact("t", line) == "first-value ***"
    secrets.delete("t", "KEY")                   # the new worker still holds second-value
    assert secrets.redact("t", line) == "first-value ***"
    release_new()
    release_new()                                # a second release changes nothing
    assert secrets.redact("t", line) == line
    assert secrets.redact("other", line) == line


def test_a_change_made_by_another_agent_leaves_no_moment_without_redaction(tmp_path: Path) -> None:
    here = service(tmp_path)
    elsewhere = SecretService(here.store, tmp_path)   # another agent on the same store
    here.set("t", "KEY", "first-value")
    release = here.hold("t")                          # a worker here that may hold it
    elsewhere.set("t", "KEY", "second-value")
    line = "first-value second-value"
    here.refresh("t")                                 # the change feed tells this agent
    assert here.redact("t", line) == "*** ***"
    assert here.get("t", "KEY") == "second-value"
    release()
    assert here.redact("t", line) == "first-value ***"
    here.refresh("never-loaded")                      # nothing to do, nothing read
    assert here.redact("never-loaded", line) == line
