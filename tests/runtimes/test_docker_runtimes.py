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
