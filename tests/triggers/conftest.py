"""One in-process agent per module for the trigger tests. Schedules are driven through
the scheduler with an injected clock (``on_loop(platform, scheduler.run_due(now))``);
no test here waits for the wall clock's ticks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.in_process import InProcessAgent, in_process_agent, run_on
from tests.tenancy.conftest import Platform, agent_env


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("triggers")
    with pytest.MonkeyPatch.context() as env:  # as the isolation fixture, for the module
        for key in [key for key in os.environ if key.startswith("HYAC_")]:
            env.delenv(key)
        for key, value in {**agent_env(), "HYAC_DATA_DIR": str(home / "data"),
                           "HYAC_CONFIG_DIR": str(home / "config"),
                           "HYAC_TRIGGER_MAX_DEPTH": "3"}.items():
            env.setenv(key, value)
        with in_process_agent(home / "data") as running:
            yield Platform(running)


def agent_of(platform: Platform) -> Any:
    running = platform.agent
    assert isinstance(running, InProcessAgent)
    return running.agent


def on_loop(platform: Platform, work: Any) -> Any:
    """Run a coroutine on the agent's own loop (its scheduler, with a clock we choose)."""
    running = platform.agent
    assert isinstance(running, InProcessAgent) and running.transport is not None
    return run_on(running.transport._loop, work)
