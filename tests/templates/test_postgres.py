"""The template registry on both stores the agent runs on, SQLite and PostgreSQL (a real
server; skipped loudly without one): seeding, publishing and its refusals, review,
installs counted once, ratings, sources and the rescan after the advisory database
changes. PostgreSQL checks what SQLite lets pass: string lengths, an aborted transaction
after a refused insert, averages as decimals."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyac_agent.store import SqlStore
from hyac_agent.templates import Viewer, registry_of
from hyac_agent.templates.builtin import builtin_dirs, seed
from hyac_agent.templates.service import viewer_id
from hyac_agent.vulns import VulnService
from hyac_common.errors import TemplateNameTaken, TemplateVersionExists
from tests.agent.test_store import store  # noqa: F401 - the fixture: SQLite, then PostgreSQL
from tests.templates.conftest import files_b64
from tests.templates.test_registry import HYAC_TOML, template
from tests.vulns.conftest import FIXTURES

OWNER = Viewer("owner", "owner", owner=True, moderator=True)


def test_the_registry_on_each_store(store: SqlStore, tmp_path: Path) -> None:  # noqa: F811
    registry = registry_of(store, tmp_path)
    assert seed(registry) == len(builtin_dirs()) and seed(registry) == 0
    # a user known by name only (no id): the longest names still fit the store's columns
    long_name = "u" * 63
    user = Viewer(viewer_id(None, long_name), long_name)
    assert viewer_id(None, "ada") == "user:ada" and viewer_id("usr_1", "ada") == "usr_1"
    files = template("old-requests")
    files.update(files_b64({"hyac.toml": HYAC_TOML + 'requirements = ["requests==2.19.0"]\n'}))
    published = registry.publish(files, user)
    assert published["status"] == "pending" and published["scan"]["status"] == "unknown"
    with pytest.raises(TemplateVersionExists):
        registry.publish(files, user)
    with pytest.raises(TemplateNameTaken):  # reads the same as a built-in's name
        registry.publish(template("kvcounter"), Viewer("usr_mallory", "mallory"))
    assert registry.review("old-requests", "1.0.0", "approved", OWNER)["status"] == "approved"

    # installs count each user once, whichever store refuses the second row
    assert registry.install("old-requests", None, user)["installs"] == 1
    assert registry.install("old-requests", None, user)["installs"] == 1
    assert registry.install("old-requests", None, OWNER)["installs"] == 2
    registry.rate("old-requests", 5, user)
    assert registry.rate("old-requests", 2, OWNER) == {"average": 3.5, "count": 2}
    assert registry.rate("old-requests", 4, OWNER) == {"average": 4.5, "count": 2}
    assert [t["name"] for t in registry.listing(user, "requests")] == ["old-requests"]

    registry.add_source("https://templates.example.com", OWNER)
    registry.add_source("https://templates.example.com", OWNER)
    assert registry.sources() == ["https://templates.example.com"]
    assert registry.remove_source("https://templates.example.com", OWNER)

    # the advisory database changes: published templates are rescanned, new findings named
    summary = VulnService(store).import_path(FIXTURES / "PyPI", data_dir=tmp_path)
    assert any(line.startswith("old-requests@1.0.0: GHSA-")
               for line in summary["templates_with_new_findings"])
    assert registry.show("old-requests", user)["scan"]["status"] == "vulnerable"
    assert VulnService(store).rescan_templates(tmp_path) == []  # nothing new the second time
