"""Agents for runtime tests: bubblewrap for every runtime, docker and gvisor for the
runtimes they have images for (Python's and java17's; node and deno have none)."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hyac_agent import runtimes
from hyac_agent.sandbox.limits import cgroup_manager
from hyac_common.errors import InvalidInput
from tests.conftest import RunningAgent, start_agent
from tests.sandbox.conftest import backend_missing


def runtime_missing(name: str, backend: str = "bwrap") -> str | None:
    """Why ``name`` cannot run here: not installed, or (on bubblewrap) a runtime whose
    memory limit needs cgroups on a host where the agent cannot make them."""
    try:
        runtime = runtimes.resolve(name)
    except InvalidInput as exc:
        return f"{exc.message} (CI: scripts/setup-runtimes.sh installs it)"
    if backend == "bwrap" and runtime.needs_cgroups:
        manager, cgroups = cgroup_manager()
        if manager is None:
            return (f"RUNTIME {name} NOT TESTED on bwrap: the agent refuses it here, its memory "
                    f"limit needs cgroups ({runtime.needs_cgroups}), and cgroups are "
                    f"unavailable ({cgroups})")
    return None


def requires_runtime(name: str) -> pytest.MarkDecorator:
    reason = runtime_missing(name)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def skip_unless_served(backend: str, runtime: str) -> None:
    """Skip loudly when ``backend`` cannot run ``runtime`` here: the backend is missing,
    the host has no interpreter (deploys compile and check with it), or the image
    backends have no image for it. CI installs all three, so there this never skips."""
    reason = backend_missing(backend)
    if reason:
        pytest.skip(f"SANDBOX BACKEND {backend!r} NOT TESTED: {reason}")
    reason = runtime_missing(runtime, backend)
    if reason:
        pytest.skip(reason)
    image = runtimes.declared(runtime)[0].image
    if backend != "bwrap" and not runtime.startswith("python") and subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, timeout=20
    ).returncode != 0:
        pytest.skip(f"SANDBOX BACKEND {backend!r} NOT TESTED for {runtime}: no image {image} "
                    f"(hyac-agent images build --runtime {runtime}; scripts/setup-docker.sh)")


def start_backend_agent(backend: str, home: Path, **env_extra: str) -> RunningAgent:
    """An agent of ``backend`` with its own data and config dirs and none of the caller's
    HYAC_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYAC_")}
    env.update(HYAC_CONFIG_DIR=str(home / "config"), HYAC_SANDBOX=backend, **env_extra)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return start_agent(home / "data", "--sandbox", backend)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def deploy_files(agent: RunningAgent, name: str, files: dict[str, str], entry: str = "",
                 **config: object) -> httpx.Response:
    """PUT a function made of ``files`` (the first is the entry unless named)."""
    body = {"entry": entry or next(iter(files)), "config": config,
            "files_b64": {p: base64.b64encode(t.encode()).decode() for p, t in files.items()}}
    with agent.client() as client:
        return client.put(f"/v1/functions/{name}", json=body)


def invoke_result(agent: RunningAgent, name: str, body: bytes = b"", status: int = 200,
                  **request: object) -> dict:
    """Invoke ``name`` and return the result, asserting the HTTP status."""
    with agent.client() as client:
        response = client.post(f"/v1/functions/{name}/invoke",
                               json={"body_b64": base64.b64encode(body).decode(), **request})
    assert response.status_code == status, response.text
    return dict(response.json())


@pytest.fixture
def bwrap_agent(isolation: Path) -> Iterator[RunningAgent]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    running = start_agent(Path(os.environ["HYAC_DATA_DIR"]), "--sandbox", "bwrap",
                          env={"HYAC_POOL_SIZE": "0"})
    yield running
    running.kill(signal.SIGTERM)
