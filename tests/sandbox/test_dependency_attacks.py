"""Attacks through a function's dependencies, against a real agent per sandbox backend.

A tenant controls its requirements, its lock and (where the owner allows direct URLs)
the packages themselves, whose build step is code of its choosing. Everything here is
local: the hostile sdist is made by the test and served from a loopback HTTP server, and
a loopback listener stands for the host services a build must never reach.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import platform
import signal
import socket
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hyac_agent import runtimes
from hyac_agent.deps import archives
from hyac_common.errors import InvalidInput
from tests.conftest import current_runtime
from tests.deps.loopback import listening, pending_connections, serving
from tests.sandbox.conftest import BACKENDS, Target, _start_target

# The sdist's build backend (PEP 517, in-tree): the package code that runs at build time.
# It probes the host, then writes a wheel whose module holds what it saw.
BACKEND = r'''
import base64, ctypes, hashlib, io, json, os, socket, zipfile

UNSHARE = {"x86_64": 272, "aarch64": 97}[os.uname().machine]


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    seen = {"uid": os.getuid(), "euid": os.geteuid(), "env": sorted(os.environ)}
    try:
        socket.create_connection(("127.0.0.1", LISTENER_PORT), timeout=5).close()
        seen["connect"] = "connected"
    except OSError as exc:
        seen["connect"] = repr(exc)
    try:
        os.makedirs(os.path.dirname(OUTSIDE), exist_ok=True)
        with open(OUTSIDE, "w") as out:
            out.write("written by a build script")
        seen["outside"] = "written"
    except OSError as exc:
        seen["outside"] = repr(exc)
    libc = ctypes.CDLL(None, use_errno=True)
    seen["unshare"] = [libc.syscall(UNSHARE, 0), ctypes.get_errno()]
    if FAIL:
        print("BUILD-LOG-MARKER", dict(os.environ), os.getcwd())
        raise SystemExit("the build fails on purpose")
    files = {
        "evilmod.py": "SEEN = %r\n" % (json.dumps(seen),),
        "evilpkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: evilpkg\nVersion: 0.1\n",
        "evilpkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                       "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    name = "evilpkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append("%s,sha256=%s,%d" % (path, digest.decode(), len(data)))
            wheel.writestr(path, data)
        record.append("evilpkg-0.1.dist-info/RECORD,,")
        wheel.writestr("evilpkg-0.1.dist-info/RECORD", "\n".join(record) + "\n")
    return name
'''

PYPROJECT = """[build-system]
requires = []
build-backend = "evilbackend"
backend-path = ["."]
"""

READER = "import evilmod, json\ndef main(context):\n    return json.loads(evilmod.SEEN)\n"


#: the sdist's format: a .tar.gz where the agent's Python has tarfile's extraction filters;
#: elsewhere the agent refuses those (as it must, tested here too) and a .zip is built
SDIST = "evilpkg-0.1.tar.gz" if archives.SAFE_TAR else "evilpkg-0.1.zip"


def make_sdist(listener_port: int, outside: Path, fail: bool = False,
               name: str = SDIST) -> bytes:
    backend = (BACKEND.replace("LISTENER_PORT", str(listener_port))
               .replace("OUTSIDE", repr(str(outside))).replace("FAIL", repr(fail)))
    files = {"pyproject.toml": PYPROJECT, "evilbackend.py": backend,
             "PKG-INFO": "Metadata-Version: 2.1\nName: evilpkg\nVersion: 0.1\n"}
    buffer = io.BytesIO()
    if name.endswith(".zip"):
        with zipfile.ZipFile(buffer, "w") as zipped:
            for member, text in files.items():
                zipped.writestr(f"evilpkg-0.1/{member}", text)
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"evilpkg-0.1/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Loopback:
    """An HTTP server with the sdist and a bare listener, both on the host's loopback."""

    url: str
    requests: list[str]  # paths asked of the server
    listener: socket.socket
    sdist: bytes
    outside: Path  # where a build script tries to leave a file on the host

    def listener_connections(self) -> int:
        return pending_connections(self.listener)


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loopback]:
    outside = tmp_path_factory.mktemp("outside") / "marker.txt"
    with listening() as listener:
        port = listener.getsockname()[1]
        sdist, failing = make_sdist(port, outside), make_sdist(port, outside, fail=True)
        with serving(lambda path: failing if "failing" in path else sdist) as (url, requests):
            yield Loopback(url, requests, listener, sdist, outside)


@pytest.fixture(autouse=True)
def prove_loopback_works(loopback: Loopback) -> None:
    """Both the server and the listener answer the host: an attack that reached them
    would be seen."""
    assert httpx.get(f"{loopback.url}/probe").content == loopback.sdist
    socket.create_connection(loopback.listener.getsockname(), timeout=5).close()
    assert loopback.listener_connections() == 1
    loopback.requests.clear()


# Builds run under bubblewrap whatever the backend; gvisor serves functions as docker does.
@pytest.fixture(scope="module", params=[b for b in BACKENDS if b != "gvisor"])
def allowing_agent(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Target]:
    """An agent whose owner allows direct URLs; uv offline, so nothing leaves the host."""
    started = _start_target(request.param, tmp_path_factory,
                            HYAC_DEPS_ALLOW_DIRECT_URLS="1", UV_OFFLINE="1")
    yield started
    started.agent.kill(signal.SIGTERM)


@pytest.fixture
def allowing_target(allowing_agent: Target) -> Iterator[Target]:
    yield allowing_agent
    allowing_agent.assert_serving()


def put(target: Target, source: str, files: dict[str, str] | None = None,
        entry: str = "", **config: object) -> httpx.Response:
    name = target.name("deps")
    entry = entry or f"functions/{name}.py"
    body = {"entry": entry, "config": {"runtime": current_runtime(), **config},
            "files_b64": {p: base64.b64encode(t.encode()).decode()
                          for p, t in {entry: source, **(files or {})}.items()}}
    with target.agent.client() as client:
        response = client.put(f"/v1/functions/{name}", json=body)
    target.last = name
    return response


def refused(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "dependency_refused", error
    assert "\n" not in error["message"]
    return str(error["message"])


def test_direct_url_vcs_path_and_option_requirements_are_refused_before_any_fetch(
    target: Target, loopback: Loopback
) -> None:
    url = f"{loopback.url}/evilpkg-0.1.tar.gz"
    assert "not allowed" in refused(put(target, READER, requirements=[f"evilpkg @ {url}"]))
    for requirement in (f"git+{loopback.url}/evilpkg.git", f"evilpkg @ git+{loopback.url}/e.git",
                        "evilpkg @ file:///etc/passwd", "./evilpkg", url,
                        f"--index-url {loopback.url}/simple", f"-e {loopback.url}/x",
                        f"six --extra-index-url {loopback.url}/simple", f"-f {loopback.url}/"):
        refused(put(target, READER, requirements=[requirement]))
    # the same lines smuggled in a requirements.txt beside the function
    entry = "functions/smuggled/main.py"
    for line in (f"--extra-index-url {loopback.url}/simple\nevilpkg",
                 f"evilpkg @ {url}", f"--find-links={loopback.url}/\nevilpkg"):
        refused(put(target, READER, {"functions/smuggled/requirements.txt": line}, entry=entry))
    assert loopback.requests == []
    assert loopback.listener_connections() == 0


def test_an_allowed_sdist_builds_without_network_root_or_forbidden_syscalls(
    allowing_target: Target, loopback: Loopback, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not archives.SAFE_TAR:
        # a .tar.gz this agent cannot unpack safely: one line, before anything is fetched
        tarball = put(allowing_target, READER,
                      requirements=[f"evilpkg @ {loopback.url}/evilpkg-0.1.tar.gz"])
        assert tarball.status_code == 422, tarball.text
        error = tarball.json()["error"]
        assert error["code"] == "dependency_install_failed"
        assert error["message"] == archives.tar_refusal()
        assert loopback.requests == []
    url = f"{loopback.url}/{SDIST}"
    response = put(allowing_target, READER, requirements=[f"evilpkg @ {url}"])
    assert response.status_code == 201, response.text
    # the agent itself fetched the archive (resolving, then installing the lock)
    assert loopback.requests and set(loopback.requests) == {f"/{SDIST}"}
    with allowing_target.agent.client() as client:
        version = client.get(f"/v1/functions/{allowing_target.last}/versions").json()[0]
    digest = hashlib.sha256(loopback.sdist).hexdigest()
    assert f"evilpkg @ {url}" in version["config"]["lock"]
    assert f"--hash=sha256:{digest}" in version["config"]["lock"]

    answer = allowing_target.agent.invoke(allowing_target.last).json()
    assert answer["ok"], answer
    seen = json.loads(base64.b64decode(answer["body_b64"]))  # the build script ran: its marker
    assert seen["uid"] != 0 and seen["euid"] != 0
    assert seen["connect"] != "connected" and loopback.listener_connections() == 0
    assert not loopback.outside.exists(), seen["outside"]
    errno_eperm = 1
    assert seen["unshare"] == [-1, errno_eperm], f"unshare(0) was not filtered on {platform.machine()}"
    assert not any(key.startswith("HYAC_") for key in seen["env"]), seen["env"]


def hostile_locks(loopback: Loopback) -> list[str]:
    digest = hashlib.sha256(loopback.sdist).hexdigest()
    return [
        f"evilpkg @ {loopback.url}/evilpkg-0.1.tar.gz --hash=sha256:{digest}\n",
        f"--index-url {loopback.url}/simple\nevilpkg==0.1 --hash=sha256:{digest}\n",
        f"evilpkg==0.1 --hash=sha256:{digest} --find-links {loopback.url}/\n",
        f"-e {loopback.url}/evilpkg-0.1.tar.gz\n",
    ]


def test_a_client_lock_naming_a_url_is_refused_even_where_urls_are_allowed(
    allowing_target: Target, loopback: Loopback
) -> None:
    for lock in hostile_locks(loopback):
        assert "lock" in refused(put(allowing_target, READER, requirements=["evilpkg"], lock=lock))
    assert loopback.requests == []
    assert loopback.listener_connections() == 0


def test_a_client_lock_naming_a_url_or_an_option_is_refused(
    target: Target, loopback: Loopback
) -> None:
    for lock in hostile_locks(loopback):
        assert "lock" in refused(put(target, READER, requirements=["evilpkg"], lock=lock))
    assert loopback.requests == []
    try:
        runtimes.resolve("node20")
    except InvalidInput as exc:
        pytest.skip(f"npm locks NOT TESTED: node20 is not installed here ({exc.message})")
    npm_lock = json.dumps({
        "package.json": {"name": "hyac-deps", "private": True, "dependencies": {"evil": "1.0.0"}},
        "package-lock.json": {"lockfileVersion": 3, "packages": {
            "": {"dependencies": {"evil": "1.0.0"}},
            "node_modules/evil": {"version": "1.0.0", "resolved": f"{loopback.url}/evil-1.0.0.tgz",
                                  "integrity": "sha512-AAAA", "hasInstallScript": True}}},
    })
    source = "export function main(context) {\n  return 1;\n}\n"
    message = refused(put(target, source, entry="functions/evil.js", runtime="node20",
                          lock=npm_lock))
    assert "registry" in message
    assert loopback.requests == []
    assert loopback.listener_connections() == 0


def test_a_failing_resolution_is_one_line_without_host_paths(target: Target) -> None:
    missing = put(target, READER, requirements=["hyac-no-such-package-really==0.0.1"])
    assert missing.status_code in (400, 422), missing.text
    message = missing.json()["error"]["message"]
    assert "hyac-no-such-package-really" in message
    data_dir = str(target.agent.data_dir)
    for leak in ("\n", data_dir, "/tmp/", "/root", "HYAC_", "Traceback"):
        assert leak not in message, message


def test_a_failing_build_is_one_line_without_its_log(
    allowing_target: Target, loopback: Loopback
) -> None:
    failing = put(allowing_target, READER,
                  requirements=[f"evilpkg @ {loopback.url}/failing/{SDIST}"])
    assert failing.status_code == 422, failing.text
    error = failing.json()["error"]
    assert error["code"] == "dependency_install_failed"
    # the build ran and printed its log (the agent's own log has it for the operator)...
    assert "BUILD-LOG-MARKER" in allowing_target.agent.log()
    # ...which the tenant does not get back
    for leak in ("\n", "BUILD-LOG-MARKER", "/tmp/", str(allowing_target.agent.data_dir),
                 "Traceback", "PATH"):
        assert leak not in error["message"], error["message"]
    assert loopback.listener_connections() == 0
