"""npm install scripts, with real npm under real bubblewrap: downloaded with scripts off,
then run with no network as a non-root uid. The package is a local tarball on a loopback
server (the owner allows direct URLs), so no registry is needed."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from hyac_agent.deps import DependencyStore
from hyac_agent.runtimes import Runtime, resolve
from tests.deps.loopback import listening, pending_connections, serving

PROBE = r"""
const fs = require("fs"), net = require("net");
const seen = {uid: process.getuid(), outside: null, connect: null};
try { fs.writeFileSync(OUTSIDE, "written by an install script"); seen.outside = "written"; }
catch (e) { seen.outside = String(e.code); }
const socket = net.connect(PORT, "127.0.0.1");
socket.setTimeout(5000);
function done(result) {
  seen.connect = result;
  fs.writeFileSync(__dirname + "/seen.json", JSON.stringify(seen));
  socket.destroy();
}
socket.on("connect", () => done("connected"));
socket.on("error", (e) => done(String(e.code)));
socket.on("timeout", () => done("timeout"));
"""


def npm_tarball(port: int, outside: Path) -> bytes:
    files = {
        "package/package.json": json.dumps({"name": "evil", "version": "1.0.0",
                                            "scripts": {"install": "node probe.js"}}),
        "package/probe.js": PROBE.replace("OUTSIDE", json.dumps(str(outside)))
                                 .replace("PORT", str(port)),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def node() -> Runtime:
    if shutil.which("bwrap") is None or shutil.which("npm") is None:
        pytest.skip("npm install scripts need bubblewrap and npm (apt-get install bubblewrap npm)")
    try:
        return resolve("node20")
    except Exception as exc:  # noqa: BLE001 - any reason the runtime is missing
        pytest.skip(f"no node20 runtime here: {exc}")


def test_install_scripts_run_without_network_as_a_non_root_uid(
    node: Runtime, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    with listening() as listener:
        body = npm_tarball(listener.getsockname()[1], outside)
        with serving(lambda path: body) as (base, requests):
            store = DependencyStore(tmp_path / "deps", sandboxed=True, allow_direct_urls=True)
            prepared = asyncio.run(store.prepare(node, [f"evil@{base}/evil-1.0.0.tgz"], None))
        assert prepared is not None and requests
        seen = json.loads((prepared.path / "node_modules" / "evil" / "seen.json").read_text())
        assert seen["uid"] != 0  # the script ran (its marker), as a non-root uid
        assert seen["connect"] != "connected" and pending_connections(listener) == 0
    assert not outside.exists(), seen["outside"]
