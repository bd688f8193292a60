"""A store with the fixture advisories, and helpers to make versions with locks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyac_agent.store import SqlStore
from hyac_agent.vulns import VulnService

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "osv"


@pytest.fixture
def store(isolation: Path) -> Iterator[SqlStore]:
    data = Path(os.environ["HYAC_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    made = SqlStore(f"sqlite:///{data / 'hyac.db'}")
    made.create_schema()
    yield made
    made.close()


@pytest.fixture
def service(store: SqlStore) -> VulnService:
    return VulnService(store)


@pytest.fixture
def loaded(service: VulnService) -> VulnService:
    service.import_path(FIXTURES / "PyPI")
    service.import_path(FIXTURES / "npm")
    return service
