"""The built-in templates are published into a registry once, approved, under the
publisher "builtin"; a name a user published before a release shipped a built-in of it
stays the user's, and the rest are still offered."""

from __future__ import annotations

import base64
from pathlib import Path

from sqlalchemy import create_engine

from hyac_agent.store import tables
from hyac_agent.templates.builtin import builtin_dirs, seed
from hyac_agent.templates.service import TemplateRegistry, Viewer
from tests.templates.test_registry import template


def registry(tmp_path: Path) -> TemplateRegistry:
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    tables.metadata.create_all(engine)
    return TemplateRegistry(engine, tmp_path / "templates",
                            scan=lambda files, runtime: {"status": "no_dependencies"})


def test_seeding_is_once_and_yields_to_an_earlier_user(tmp_path: Path) -> None:
    fresh = registry(tmp_path)
    ada = Viewer("usr_ada", "ada")
    fresh.publish(template("kv-counter"), ada)  # before a release shipped kv-counter
    added = seed(fresh)
    assert added == len(builtin_dirs()) - 1
    assert seed(fresh) == 0  # a second start adds nothing
    listed = {item["name"]: item for item in fresh.listing(Viewer("owner", "owner", owner=True,
                                                                  moderator=True))}
    assert listed["kv-counter"]["publisher"] == "ada" and not listed["kv-counter"]["builtin"]
    assert listed["webhook-hmac"]["builtin"] and listed["webhook-hmac"]["status"] == "approved"
    assert base64.b64decode(fresh.install("webhook-hmac", None, ada)["files_b64"]["README.md"])
