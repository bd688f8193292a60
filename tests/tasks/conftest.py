"""Fixtures for background-task tests: real agents with quick leases and callbacks."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningAgent, start_agent
from tests.tasks.helpers import FAST_TASKS


@pytest.fixture
def task_agent(isolation: Path) -> Iterator[RunningAgent]:
    """A real agent (bubblewrap sandbox, embedded queue) with a 2 s task lease."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    running = start_agent(Path(os.environ["HYAC_DATA_DIR"]), "--sandbox", "bwrap", env=FAST_TASKS)
    yield running
    running.kill(signal.SIGTERM)
