"""The sandbox interface: start one worker for one function version, isolated.

A backend turns a ``SandboxSpec`` into a running ``Sandbox``: a worker process whose
framed channel is a connected unix socket (its fd number in ``HYAC_CHANNEL_FD``) and whose
raw stdout/stderr are pipes. Backends: ``bwrap`` (bubblewrap namespaces), ``process``
(no isolation, development only); ``docker`` comes next and fits the same shape.
"""

from __future__ import annotations

import abc
import asyncio
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from hyac_agent.runtimes import Runtime

CODE_MOUNT = "/code"
RUNTIME_MOUNT = "/runtime"


@dataclass(frozen=True)
class SandboxSpec:
    tenant: str
    function: str
    version: int
    runtime: Runtime
    code_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    memory_bytes: int | None = None


class Sandbox:
    """A started worker: its process, the agent's end of the channel, its output pipes."""

    def __init__(
        self, process: asyncio.subprocess.Process, channel: socket.socket, code_dir: str
    ) -> None:
        self.process = process
        self.channel = channel
        #: where the function's bundle is, as the worker sees it
        self.code_dir = code_dir

    @property
    def pid(self) -> int:
        return self.process.pid

    async def kill(self) -> None:
        """Kill the worker and everything it started; safe to call twice."""
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            await asyncio.wait_for(self.process.wait(), timeout=10)
        except asyncio.TimeoutError:
            pass
        self.channel.close()


def worker_environment(spec: SandboxSpec, code_mount: str, channel_fd: int) -> dict[str, str]:
    """The worker's whole environment: nothing of the agent's leaks in."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HYAC_CODE_DIR": code_mount,
        "HYAC_CHANNEL_FD": str(channel_fd),
    }
    env.update(spec.env)
    return env


class SandboxBackend(abc.ABC):
    name: str = "abstract"
    #: whether the backend isolates the worker from the host at all
    isolating: bool = True

    @classmethod
    @abc.abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when the backend can run on this host, else what is missing and how to fix it."""

    @abc.abstractmethod
    def describe(self) -> dict[str, object]:
        """Which isolation features are in force, for `hyac-agent doctor` and the API."""

    @abc.abstractmethod
    async def start(self, spec: SandboxSpec) -> Sandbox: ...

    def code_mount(self, spec: SandboxSpec) -> str:
        """Where the worker finds the function's bundle."""
        return CODE_MOUNT


class ProcessLauncher(SandboxBackend):
    """Shared by backends that start the worker as a local child process."""

    @abc.abstractmethod
    def command(self, spec: SandboxSpec, channel_fd: int) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that start the worker with its channel on ``channel_fd``."""

    async def start(self, spec: SandboxSpec) -> Sandbox:
        agent_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # The fd keeps its number in the child; the worker learns it from HYAC_CHANNEL_FD.
            argv, env = self.command(spec, worker_end.fileno())
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                pass_fds=(worker_end.fileno(),),
                start_new_session=True,
                cwd="/",
            )
        except BaseException:
            agent_end.close()
            raise
        finally:
            worker_end.close()
        return Sandbox(process, agent_end, self.code_mount(spec))
