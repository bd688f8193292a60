"""hyac_agent/execution/hostcalls.py with a real store and tenancy: a kv.set goes through the
tenant's storage quota (the agent builds its host calls with the tenancy, always)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hyac_agent.execution.hostcalls import HostCalls
from hyac_agent.store import SqlStore
from hyac_agent.tenancy import TenancyService
from hyac_common.errors import HyacError


def test_a_kv_set_over_the_storage_quota_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hyac.db'}"
    store = SqlStore(url)
    store.create_schema()
    tenancy = TenancyService(store, store.engine, tmp_path, url, "agent-token", lambda: None)
    tenancy.store.create_tenant("small")
    tenancy.quotas.set("small", {"storage": 1000}, owner=True)
    unused: Any = object()  # mail, invoke, tasks and notify are not reached by kv calls
    calls = HostCalls(store, 2, tenancy, unused, unused, unused, unused)

    async def scenario() -> None:
        await calls("small", "kv.set", {"key": "fits", "value": "x" * 500})
        with pytest.raises(HyacError) as refused:
            await calls("small", "kv.set", {"key": "too-much", "value": "x" * 600})
        assert refused.value.code == "quota_exceeded"
        assert refused.value.details["quota"] == "storage"
        # Within the quota again: a smaller value replacing the first one is stored.
        await calls("small", "kv.set", {"key": "fits", "value": "y" * 100})

    try:
        asyncio.run(scenario())
        assert store.kv_get("small", "fits") == "y" * 100
        assert store.kv_get("small", "too-much") is None
    finally:
        store.close()


def test_a_kv_key_with_a_nul_is_refused_on_every_store(tmp_path: Path) -> None:
    """PostgreSQL keeps no NUL in text: such a key failed there as an internal error (and
    worked on SQLite); now it is the caller's error on both."""
    url = f"sqlite:///{tmp_path / 'hyac.db'}"
    store = SqlStore(url)
    store.create_schema()
    tenancy = TenancyService(store, store.engine, tmp_path, url, "agent-token", lambda: None)
    tenancy.store.create_tenant("t")
    unused: Any = object()
    calls = HostCalls(store, 2, tenancy, unused, unused, unused, unused)

    async def scenario() -> list[str]:
        codes = []
        for op, args in (("kv.set", {"key": "a\x00b", "value": 1}), ("kv.get", {"key": "\x00"}),
                         ("kv.delete", {"key": "a\x00"}), ("kv.list", {"prefix": "a\x00"})):
            with pytest.raises(HyacError) as refused:
                await calls("t", op, args)
            assert "NUL" in refused.value.message
            codes.append(refused.value.code)
        return codes

    try:
        assert asyncio.run(scenario()) == ["invalid_input"] * 4
        assert store.kv_list("t", "", 10) == []
    finally:
        store.close()
