"""An agent in this process for the notification tests (one per module), and loopback
receivers: the owner's HYAC_CALLBACK_ALLOW_CIDRS opens 127.0.0.0/8 to them, as it does
for the task callbacks' tests."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.in_process import InProcessAgent, in_process_agent
from tests.tasks.test_callbacks import Receiver

__all__ = ["Receiver", "Silent", "agent_with"]


@contextlib.contextmanager
def agent_with(directory: Path, **env: str) -> Iterator[InProcessAgent]:
    """An in-process agent started with these ``HYAC_*`` settings (and no others)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("HYAC_")]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        patch.setenv("HYAC_DATA_DIR", str(directory))
        with in_process_agent(directory) as running:
            yield running


class Silent:
    """A receiver that takes connections and never answers."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                self.held.append(self.server.accept()[0])

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.server.close()
        for held in self.held:
            held.close()
