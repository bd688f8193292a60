"""Bundles in the shared store: packed in the deploy's transaction, fetched and checked
by a node that lacks them, collected when no version uses them; and the change feed that
tells every node what changed (SQLite here; PostgreSQL in test_two_agents.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hyac_agent.bundles import BundleStore, pack, unpack
from hyac_agent.cluster import ChangeFeed, FeedSettings
from hyac_agent.store import SqlStore
from hyac_common.errors import FunctionLoadError, InvalidBundle
from hyac_common.wire import FunctionConfig

FILES = {"functions/f.py": b"def main(context):\n    return 1\n", "functions/lib/u.py": b"X = 1\n",
         "empty.txt": b""}
CONFIG = FunctionConfig(runtime="python3.11")


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    s = SqlStore(f"sqlite:///{tmp_path / 'hyac.db'}")
    s.create_schema()
    return s


def test_pack_round_trips_and_unpack_refuses_what_deploy_would(tmp_path: Path) -> None:
    assert unpack(pack(FILES)) == FILES
    assert pack(FILES) == pack(dict(reversed(list(FILES.items()))))  # one blob per content
    with pytest.raises(InvalidBundle):  # a tampered store cannot write outside the bundle
        unpack(b'[["../../etc/x",1]]\nA')
    with pytest.raises(InvalidBundle):
        unpack(b'[["a.py",5]]\nAB')
    with pytest.raises(InvalidBundle):
        unpack(b"not json\n")


def test_a_node_without_the_bundle_fetches_and_checks_it(store: SqlStore, tmp_path: Path) -> None:
    store.record_deploy("t", "f", "a" * 64, "functions/f.py", CONFIG, bundle=pack(FILES))
    other = BundleStore(tmp_path / "other", store)
    code = other.fetch("a" * 64)
    assert (code / "functions/lib/u.py").read_bytes() == b"X = 1\n"
    assert other.cached() == ["a" * 64]

    with pytest.raises(FunctionLoadError) as missing:
        other.fetch("b" * 64)
    assert str(tmp_path) not in missing.value.message and "/" not in missing.value.message

    with store.engine.begin() as conn:  # the stored bytes no longer match their sha256
        conn.exec_driver_sql("UPDATE blob_chunks SET data = X'00'")
    with pytest.raises(FunctionLoadError, match="damaged"):
        BundleStore(tmp_path / "third", store).fetch("a" * 64)
    assert not (tmp_path / "third" / ("a" * 64)).exists()


def test_large_bundles_are_chunked(store: SqlStore, tmp_path: Path) -> None:
    big = {"functions/f.py": b"x = 1\n", "data.bin": bytes(range(256)) * 12_000}  # ~3 MiB
    store.record_deploy("t", "f", "c" * 64, "functions/f.py", CONFIG, bundle=pack(big))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM blob_chunks").scalar() == 3
    assert (BundleStore(tmp_path / "n", store).fetch("c" * 64) / "data.bin").read_bytes() == big["data.bin"]


def test_collection_spares_referenced_and_recent_blobs(store: SqlStore) -> None:
    store.record_deploy("t", "keep", "a" * 64, "functions/f.py", CONFIG, bundle=pack(FILES))
    store.record_deploy("t", "gone", "b" * 64, "functions/f.py", CONFIG, bundle=pack({"x": b"1"}))
    store.delete_function("t", "gone")
    assert store.collect_blobs(time.time() - 600) == 0  # used too recently: a deploy may race
    assert store.collect_blobs(time.time() + 1) == 1
    assert store.blob_names() == {"a" * 64}
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM blob_chunks").scalar() == 1


class Recorder:
    def __init__(self) -> None:
        self.functions: list[tuple[str, str]] = []
        self.tenants: list[str] = []

    async def function_changed(self, tenant: str, name: str) -> None:
        self.functions.append((tenant, name))

    async def tenant_changed(self, tenant: str) -> None:
        self.tenants.append(tenant)


def test_the_feed_sees_changes_whoever_wrote_them(store: SqlStore, tmp_path: Path) -> None:
    from hyac_agent.tenancy.store import TenancyStore

    tenancy = TenancyStore(store.engine)
    tenancy.create_schema()
    recorder = Recorder()
    bundles = BundleStore(tmp_path / "b", store)
    feed = ChangeFeed(store.engine, store, bundles, recorder, FeedSettings())

    async def scenario() -> None:
        feed._seen = feed._last_id()
        # written as another node (or an operator's SQL) would: straight to the store
        store.record_deploy("t", "f", "a" * 64, "functions/f.py", CONFIG, bundle=pack(FILES))
        store.record_deploy("t", "f", "b" * 64, "functions/f.py", CONFIG, bundle=pack({"x": b""}))
        store.set_active_version("t", "f", 1)
        tenancy.set_env("t", "REGION", "eu")
        tenancy.set_quotas("u", {"concurrency": 2.0})
        assert await feed.catch_up() >= 5
        assert recorder.functions == [("t", "f")]  # once per batch
        assert recorder.tenants == ["t", "u"]
        assert await feed.catch_up() == 0
        store.delete_function("t", "f")
        await feed.catch_up()
        assert recorder.functions == [("t", "f"), ("t", "f")]

    asyncio.run(scenario())


def test_tidy_shares_old_bundles_and_evicts_collected_ones(store: SqlStore, tmp_path: Path) -> None:
    bundles = BundleStore(tmp_path / "b", store)
    bundles.write("d" * 64, FILES)  # deployed before bundles were shared
    store.record_deploy("t", "old", "d" * 64, "functions/f.py", CONFIG)
    bundles.write("e" * 64, {"x": b"1"})  # cached, and its function since removed
    feed = ChangeFeed(store.engine, store, bundles, Recorder(), FeedSettings(collect_grace=-1))
    feed.tidy()
    assert store.blob_names() == {"d" * 64}
    assert unpack(store.get_blob("d" * 64)[0]) == FILES  # type: ignore[index]
    assert bundles.cached() == ["d" * 64]
