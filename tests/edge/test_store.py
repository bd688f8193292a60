"""The edge's store on its own: the lease that lets one agent of a cluster order a
domain's certificate at a time."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from hyac_agent.edge.store import EdgeStore


def test_a_lease_is_held_by_one_until_it_runs_out(tmp_path: Path) -> None:
    one = EdgeStore(create_engine(f"sqlite:///{tmp_path / 'edge.db'}"))
    one.create_schema()
    other = EdgeStore(create_engine(f"sqlite:///{tmp_path / 'edge.db'}"))
    assert one.take_lease("acme_lease:a.example.test", 600) is True
    assert other.take_lease("acme_lease:a.example.test", 600) is False
    assert other.take_lease("acme_lease:b.example.test", 600) is True
    one.put_setting("acme_lease:a.example.test", 0)  # as if it had run out
    assert other.take_lease("acme_lease:a.example.test", 600) is True
    other.delete_setting("acme_lease:a.example.test")
    assert one.take_lease("acme_lease:a.example.test", 600) is True
    assert one.get_setting("missing") is None
