from __future__ import annotations

import base64
from pathlib import Path

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
