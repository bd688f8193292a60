"""Per-function dependencies against a real agent: installed from PyPI into a shared,
content-addressed environment; conflicts fail the deploy and change nothing."""

from __future__ import annotations

import base64
import json
import os
import socket
from pathlib import Path

import pytest

from tests.conftest import RunningAgent, current_runtime
from tests.runtime_families.conftest import bwrap_agent  # noqa: F401 - fixture


def _pypi_unreachable() -> str | None:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as exc:
        return f"PyPI is unreachable ({exc}): dependency installs cannot be tested"
    return None


_REASON = _pypi_unreachable()
pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.network,
]

SIX = """
import six
def main(context):
    return {"six": six.__version__, "path": six.__file__}
"""


def put(agent: RunningAgent, name: str, source: str, files: dict[str, str] | None = None,
        **config: object):  # type: ignore[no-untyped-def]
    entry = f"functions/{name}.py"
    all_files = {entry: source, **(files or {})}
    body = {"entry": entry, "config": {"runtime": current_runtime(), **config},
            "files_b64": {p: base64.b64encode(t.encode()).decode() for p, t in all_files.items()}}
    with agent.client() as client:
        return client.put(f"/v1/functions/{name}", json=body)


def answer(agent: RunningAgent, name: str) -> dict:
    response = agent.invoke(name)
    data = response.json()
    assert data["ok"], data
    return json.loads(base64.b64decode(data["body_b64"]))


def test_requirement_is_installed_cached_and_conflicts_change_nothing(
    bwrap_agent: RunningAgent,  # noqa: F811
) -> None:
    first = put(bwrap_agent, "sixer", SIX, requirements=["six==1.16.0"])
    assert first.status_code == 201, first.text
    deps = first.json()["dependencies"]
    assert deps["installed"] is True and deps["packages"] == 1
    assert answer(bwrap_agent, "sixer")["six"] == "1.16.0"
    env = Path(os.environ["HYAC_DATA_DIR"]) / "deps" / "envs" / deps["env"]
    inode = env.stat().st_ino, env.stat().st_mtime_ns

    # the lock is stored with the version
    with bwrap_agent.client() as client:
        version = client.get("/v1/functions/sixer/versions").json()[0]
    assert "six==1.16.0" in version["config"]["lock"]

    # another function with the same requirements shares the environment: no install
    second = put(bwrap_agent, "sixtoo", SIX + "# another function\n", requirements=["six==1.16.0"])
    assert second.status_code == 201, second.text
    assert second.json()["dependencies"] == {**deps, "installed": False}
    assert (env.stat().st_ino, env.stat().st_mtime_ns) == inode
    assert answer(bwrap_agent, "sixtoo")["six"] == "1.16.0"

    # a conflicting pair fails before anything changes; v1 keeps serving
    conflict = put(bwrap_agent, "sixer", SIX + "# v2\n", requirements=["six==1.16.0", "six==1.15.0"])
    assert conflict.status_code == 400, conflict.text
    error = conflict.json()["error"]
    assert error["code"] == "dependency_conflict"
    assert "six==1.16.0" in error["message"] and "six==1.15.0" in error["message"]
    with bwrap_agent.client() as client:
        summary = client.get("/v1/functions/sixer").json()
    assert summary["active_version"] == 1 and summary["versions"] == 1
    assert answer(bwrap_agent, "sixer")["six"] == "1.16.0"

    # requirements.txt beside a function's main.py counts too; a missing package shows
    # the installer's own message
    missing = put(bwrap_agent, "nope", SIX,
                  requirements=["hyac-no-such-package-really==0.0.1"])
    assert missing.status_code in (400, 422), missing.text
    assert "hyac-no-such-package-really" in missing.json()["error"]["message"]


def test_requirements_txt_beside_the_function(bwrap_agent: RunningAgent) -> None:  # noqa: F811
    entry = "functions/idn/main.py"
    body = {
        "entry": entry, "config": {"runtime": current_runtime()},
        "files_b64": {
            entry: base64.b64encode(b"import idna\ndef main(context):\n"
                                    b"    return idna.encode('ko\\u010dka.cz').decode()\n").decode(),
            "functions/idn/requirements.txt": base64.b64encode(b"idna>=3\n").decode(),
        },
    }
    with bwrap_agent.client() as client:
        response = client.put("/v1/functions/idn", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["dependencies"]["installed"] is True
    result = bwrap_agent.invoke("idn").json()
    assert result["ok"], result
    assert base64.b64decode(result["body_b64"]) == b"xn--koka-9na.cz" or \
        base64.b64decode(result["body_b64"]).startswith(b"xn--")


def test_a_package_without_a_wheel_is_not_built_with_the_network(
    bwrap_agent: RunningAgent,  # noqa: F811
) -> None:
    # PyYAML 5.4.1 predates Python 3.11: PyPI has only its sdist for this runtime, whose
    # setup.py would run while resolving if builds were on
    response = put(bwrap_agent, "yaml", SIX, requirements=["pyyaml==5.4.1"], runtime="python3.11")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "dependency_install_failed"
    assert "pyyaml" in error["message"] and "wheels only" in error["message"]
    assert "\n" not in error["message"]
