"""The docker backend has images for Python runtimes only: node and deno fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyac_agent.sandbox.base import SandboxSettings
from hyac_agent.sandbox.docker import DockerBackend
from hyac_common.errors import InvalidInput


@pytest.mark.parametrize("name", ["node20", "deno"])
def test_docker_refuses_script_runtimes_with_the_way_out(name: str, tmp_path: Path) -> None:
    backend = DockerBackend(SandboxSettings(run_dir=tmp_path))
    with pytest.raises(InvalidInput, match="--sandbox bwrap"):
        backend.resolve_runtime(name)


def test_an_engine_that_refuses_the_container_is_sandbox_unavailable(tmp_path: Path) -> None:
    """Docker's own refusal (here: a memory limit under its 6 MB minimum) is a 503 with
    the engine's words, not an internal error."""
    import asyncio

    from hyac_agent.sandbox.base import SandboxSpec
    from hyac_agent.sandbox.limits import ResourceLimits
    from hyac_common.errors import SandboxUnavailable
    from tests.sandbox.conftest import backend_missing

    reason = backend_missing("docker")
    if reason:
        pytest.skip(f"SANDBOX BACKEND 'docker' NOT TESTED: {reason}")
    backend = DockerBackend(SandboxSettings(run_dir=tmp_path))
    runtime = backend.resolve_runtime("python3.11")
    spec = SandboxSpec(runtime=runtime, limits=ResourceLimits().with_memory(1024 * 1024))
    with pytest.raises(SandboxUnavailable, match="docker could not start the sandbox: .*[Mm]emory"):
        asyncio.run(backend.start(spec))
    assert not list((tmp_path / "sandboxes").iterdir()), "nothing is left behind"
