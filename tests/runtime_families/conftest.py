"""Agents for runtime tests: bubblewrap always (node and deno have no docker image)."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyac_agent import runtimes
from hyac_common.errors import InvalidInput
from tests.conftest import RunningAgent, start_agent


def runtime_missing(name: str) -> str | None:
    try:
        runtimes.resolve(name)
    except InvalidInput as exc:
        return exc.message
    return None


def requires_runtime(name: str) -> pytest.MarkDecorator:
    reason = runtime_missing(name)
    return pytest.mark.skipif(
        reason is not None, reason=f"{reason} (CI: scripts/setup-runtimes.sh installs it)"
    )


@pytest.fixture
def bwrap_agent(isolation: Path) -> Iterator[RunningAgent]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    running = start_agent(Path(os.environ["HYAC_DATA_DIR"]), "--sandbox", "bwrap",
                          env={"HYAC_POOL_SIZE": "0"})
    yield running
    running.kill(signal.SIGTERM)
