"""With the automatic choice, docker serves what it has images for and bubblewrap the rest."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from hyac_agent.runtimes import resolve
from hyac_common.errors import InvalidInput
from tests.conftest import start_agent


def test_runtimes_without_an_image_fall_back_to_bwrap(isolation: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    agent = start_agent(isolation / "data")
    try:
        with agent.client() as client:
            info = client.get("/v1/agent").json()
        if info["extra"]["isolation"].get("backend") != "auto":
            pytest.skip(f"docker is not in use here ({info['sandbox']}): run scripts/setup-docker.sh")
        python = "python3.12"
        try:
            resolve(python)
        except InvalidInput as exc:
            pytest.skip(f"no {python} interpreter on this host: {exc.message}")
        agent.deploy("versioned", "import sys\ndef main(context):\n    return list(sys.version_info[:2])\n",
                     runtime=python)
        answer = agent.invoke("versioned").json()
        assert answer["ok"], answer
        assert base64.b64decode(answer["body_b64"]) == b"[3, 12]"
        with agent.client() as client:
            served = client.get("/v1/agent").json()["extra"]["isolation"]["served_by"]
        assert served[python] == "bwrap"
        with agent.client() as client:
            listed = {r["name"]: r for r in client.get("/v1/runtimes").json()}
        assert listed[python]["backends"].get("bwrap") == "ok", listed[python]
        assert "docker" not in listed[python]["backends"], "the list names the serving sandbox"
        assert listed["python3.11"]["backends"].get("docker") == "ok", listed["python3.11"]
    finally:
        agent.kill()
