"""Hostile API input from tenant users: malformed bundles are refused with the reason and
change nothing, and /v1/agent tells the platform's internals to the owner alone."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import current_runtime
from tests.tenancy.conftest import Platform, body

SOURCE = "def main(context):\n    return {{'version': {n}}}\n"
ENTRY = "functions/app.py"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# name -> (files besides the entry, entry, words the reason must contain)
MALFORMED: dict[str, tuple[dict[str, str], str, str]] = {
    "300-character file name": ({"functions/" + "a" * 300 + ".py": "x = 1\n"}, ENTRY,
                                "longer than 255 bytes"),
    "5000-character path": ({"/".join(["d" * 49] * 100) + "/m.py": "x = 1\n"}, ENTRY,
                            "longer than 1024 bytes"),
    "file and folder of one name": ({"lib": "x = 1\n", "lib/helpers.py": "x = 2\n"}, ENTRY,
                                    "both a file and the folder"),
    "absolute path": ({"/etc/cron.d/evil": "* * * * * root id\n"}, ENTRY, "absolute path"),
    "dot-dot": ({"functions/../../../escape.py": "x = 1\n"}, ENTRY, "'..'"),
    "NUL byte": ({"functions/a\x00.py": "x = 1\n"}, ENTRY, "control characters"),
    "newline in a name": ({"functions/a\nb.py": "x = 1\n"}, ENTRY, "control characters"),
    "backslash": ({"functions\\..\\x.py": "x = 1\n"}, ENTRY, "not '\\'"),
    "too deep": ({"/".join(["d"] * 40) + "/m.py": "x = 1\n"}, ENTRY, "folders deep"),
    "entry outside": ({}, "../functions/app.py", "'..'"),
    "too many files": ({f"data/{i}.txt": "" for i in range(1001)}, ENTRY, "more than 1000 files"),
}


@pytest.fixture(scope="module")
def serving(platform: Platform) -> str:
    """A tenant whose function ``app`` serves version 1."""
    platform.tenant("bundles")
    answer = platform.deploy("app", SOURCE.format(n=1), "bundles")
    assert answer.status_code == 201, answer.text
    return "bundles"


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_bundle_is_400_and_stores_nothing(
    platform: Platform, serving: str, case: str
) -> None:
    extra, entry, reason = MALFORMED[case]
    files = {ENTRY: _b64(SOURCE.format(n=2)), **{k: _b64(v) for k, v in extra.items()}}
    request = {"entry": entry, "files_b64": files, "config": {"runtime": current_runtime()}}
    bundles = platform.agent.data_dir / "bundles"
    before = sorted(p.name for p in bundles.iterdir())
    with platform.owner(serving) as client:
        answer = client.put("/v1/functions/app", json=request)
        versions = client.get("/v1/functions/app/versions").json()
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_bundle" and reason in error["message"], error
    assert sorted(p.name for p in bundles.iterdir()) == before  # nothing written
    assert [v["version"] for v in versions] == [1]
    assert json.loads(body(platform.invoke("app", serving))) == {"version": 1}


def test_a_path_named_twice_is_400(platform: Platform, serving: str) -> None:
    # JSON lets a key appear twice; which one counts differs between parsers.
    first, second = json.dumps(_b64(SOURCE.format(n=4))), json.dumps(_b64(SOURCE.format(n=5)))
    raw = (f'{{"entry": "{ENTRY}", "config": {{"runtime": "{current_runtime()}"}}, '
           f'"files_b64": {{"{ENTRY}": {first}, "{ENTRY}": {second}}}}}')
    with platform.owner(serving) as client:
        answer = client.put("/v1/functions/app", content=raw,
                            headers={"content-type": "application/json"})
        versions = client.get("/v1/functions/app/versions").json()
    assert answer.status_code == 400, answer.text
    assert "named twice" in answer.json()["error"]["message"]
    assert [v["version"] for v in versions] == [1]
    assert json.loads(body(platform.invoke("app", serving))) == {"version": 1}


def test_a_good_bundle_after_the_bad_ones_deploys(platform: Platform, serving: str) -> None:
    # The checks refuse what is malformed, not what is merely unusual.
    files = {ENTRY: _b64(SOURCE.format(n=3)), "lib/" + "é" * 120 + ".py": _b64("x = 1\n"),
             "/".join(["d"] * 30) + "/m.py": _b64("x = 2\n")}
    request = {"entry": ENTRY, "files_b64": files, "config": {"runtime": current_runtime()}}
    with platform.owner(serving) as client:
        answer = client.put("/v1/functions/app", json=request)
    assert answer.status_code == 201, answer.text
    assert json.loads(body(platform.invoke("app", serving))) == {"version": 3}


# /v1/agent ----------------------------------------------------------------------------

INTERNALS = ("pid", "data_dir", "sandbox", "extra", "url")


@pytest.fixture(scope="module")
def members(platform: Platform) -> dict[str, str]:
    platform.tenant("insiders")
    return {role: platform.user(f"agent-{role}", "insiders", role)
            for role in ("viewer", "developer", "admin")}


def test_agent_details_are_the_owners(platform: Platform) -> None:
    with platform.owner() as client:
        info = client.get("/v1/agent").json()
    assert info["pid"] == platform.agent.process.pid
    assert info["data_dir"] == str(platform.agent.data_dir)
    assert info["sandbox"] == "bwrap" and "pool" in info["extra"]


@pytest.mark.parametrize("role", ["viewer", "developer", "admin"])
def test_agent_tells_tenant_users_version_and_health_only(
    platform: Platform, members: dict[str, str], role: str
) -> None:
    with platform.http(members[role]) as client:
        answer = client.get("/v1/agent")
        health = client.get("/v1/health").json()
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"running": True, "version": health["version"]}
    assert str(platform.agent.data_dir) not in answer.text
    assert not any(key in answer.json() for key in INTERNALS)


def test_agent_still_needs_a_token(platform: Platform) -> None:
    with platform.http("hyac_not-a-token") as client:
        assert client.get("/v1/agent").status_code == 401


def _status(platform: Platform, token: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "hyac_cli", "agent", "status", "--json"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "HYAC_URL": platform.agent.url, "HYAC_TOKEN": token},
    )
    assert not done.stderr.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_cli_agent_status_for_owner_and_tenant_user(
    platform: Platform, members: dict[str, str]
) -> None:
    code, owner = _status(platform, platform.agent.token)
    assert code == 0 and owner["running"] is True
    assert owner["pid"] == platform.agent.process.pid
    assert owner["data_dir"] == str(platform.agent.data_dir)

    code, viewer = _status(platform, members["viewer"])
    assert code == 0 and viewer["running"] is True and viewer["url"] == platform.agent.url
    assert viewer["version"] == owner["version"]
    assert viewer["pid"] is None and viewer["data_dir"] != str(platform.agent.data_dir)
