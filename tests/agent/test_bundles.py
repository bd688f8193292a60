from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import pytest

from hyac_agent.bundles import BundleStore, bundle_sha256, decode_bundle
from hyac_common.errors import InvalidInput, PayloadTooLarge
from hyac_common.wire import DeployRequest, FunctionConfig


def request(files: dict[str, bytes], entry: str = "functions/f.py", **config: object) -> DeployRequest:
    return DeployRequest(
        entry=entry,
        files_b64={p: base64.b64encode(c).decode() for p, c in files.items()},
        config=FunctionConfig(**config),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "path", ["../x.py", "/abs.py", "a/../b.py", "a//b.py", "./a.py", "a\\b.py", "", "a/\x00.py"]
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidInput):
        decode_bundle(request({path: b"x", "functions/f.py": b"y"}), 1000)


def test_size_limit_and_entry() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_bundle(request({"functions/f.py": b"x" * 2000}), 1000)
    with pytest.raises(InvalidInput, match="entry"):
        decode_bundle(request({"functions/g.py": b"x"}), 1000)


def test_sha_covers_files_entry_and_config() -> None:
    files = {"functions/f.py": b"print(1)"}
    base = bundle_sha256(files, request(files))
    assert base == bundle_sha256(dict(files), request(files))
    assert base != bundle_sha256({"functions/f.py": b"print(2)"}, request(files))
    assert base != bundle_sha256(files, request(files, timeout=5))
    assert base != bundle_sha256(files, request(files, env={"A": "1"}))


def test_write_is_atomic_and_idempotent(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles")
    (tmp_path / "bundles" / ".tmp-crashed").mkdir()
    store.sweep_temporary()
    assert not list((tmp_path / "bundles").glob(".tmp-*"))
    code = store.write("abc", {"functions/f.py": b"x", "functions/lib/util.py": b"y"})
    assert (code / "functions/lib/util.py").read_bytes() == b"y"
    assert store.exists("abc")
    assert store.write("abc", {"functions/f.py": b"changed"}) == code
    assert (code / "functions/f.py").read_bytes() == b"x"


def test_racing_writes_of_one_bundle_keep_the_first(tmp_path: Path) -> None:
    """Two deploys of the same code write the same bundle at once. The first write
    in stays (a sandbox may already read it); the others drop theirs, none fails.
    Before, a later write removed the bundle in place and a third one failed."""
    store = BundleStore(tmp_path / "bundles")
    sha = "a" * 64
    files = {f"functions/f{i}.py": b"x" * 2048 for i in range(40)}
    start = threading.Barrier(8)

    def write() -> Path:
        start.wait()
        return store.write(sha, files)

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: write(), range(8)))
    assert set(paths) == {store.code_dir(sha)}
    assert store.files_of(sha) == files
    assert store.cached() == [sha]
    assert not list((tmp_path / "bundles").glob(".tmp-*"))


def test_a_write_keeps_a_complete_bundle_in_place(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles")
    sha = "b" * 64
    code = store.write(sha, {"a.py": b"1"})
    inode = code.stat().st_ino
    # A write that checked before the other had finished goes on to put its copy in place.
    with mock.patch.object(BundleStore, "exists", side_effect=[False, True]):
        assert store.write(sha, {"a.py": b"1"}) == code
    assert code.stat().st_ino == inode and store.files_of(sha) == {"a.py": b"1"}
    # A crashed write's leftover (no `complete` marker) is replaced.
    (tmp_path / "bundles" / ("c" * 64) / "code").mkdir(parents=True)
    assert (store.write("c" * 64, {"b.py": b"2"}) / "b.py").read_bytes() == b"2"
