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


def test_a_refresh_that_read_the_store_before_a_change_here_does_not_undo_it(
    tmp_path: Path,
) -> None:
    """The change feed's refresh reads the store; a secret set here meanwhile, written
    after that read, must not be lost when the refresh lands (the function then found
    no such secret: KeyError)."""
    import threading

    secrets = service(tmp_path)
    secrets.set("t", "OTHER", "x")                     # the tenant's values are loaded
    read_started, go_on = threading.Event(), threading.Event()
    original = secrets.store.secrets_of
    held = {"first": True}

    def slow_read(tenant: str) -> dict[str, str]:
        found = original(tenant)                       # before the change below
        if held.pop("first", False):
            read_started.set()
            go_on.wait(10)
        return found

    secrets.store.secrets_of = slow_read  # type: ignore[method-assign]
    refresher = threading.Thread(target=secrets.refresh, args=("t",))
    refresher.start()
    assert read_started.wait(10)
    secrets.set("t", "ROTATED", "new-value")            # written after the refresh's read
    go_on.set()
    refresher.join(10)
    assert secrets.get("t", "ROTATED") == "new-value"
    assert secrets.names("t") == ["OTHER", "ROTATED"]
