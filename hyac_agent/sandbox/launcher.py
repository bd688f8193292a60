"""Starting a worker as a local child process: the part the bwrap and unsandboxed
backends share (docker starts its workers through the Docker engine instead).

A process backend says how to start one worker (``prepare`` returns a ``Launch``: argv,
environment, fds to pass); the launcher makes the channel, starts the process in a new
session and hands back the ``Sandbox``. The channel is an inherited socket
(``HYAC_CHANNEL_FD``), or, for runtimes that cannot adopt one (``runtime.channel ==
"path"``, e.g. Deno), a socket the agent listens on in the sandbox's own directory.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import shutil
import signal
import socket
from pathlib import Path

from hyac_agent.sandbox.base import Sandbox, SandboxBackend, SandboxSpec, make_host_dir, new_sandbox_id

CHANNEL_DIR = "channel"
CHANNEL_NAME = "channel.sock"
CHANNEL_CONNECT_TIMEOUT = 30.0


class Launch:
    """What a process backend needs to start one worker; ``close`` releases it."""

    def __init__(self, argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> None:
        self.argv = argv
        self.env = env
        self.pass_fds = pass_fds
        self.owned_fds: list[int] = []
        #: backend state carried from ``prepare`` to ``make_sandbox`` (e.g. a cgroup)
        self.extra: object = None
        #: the host uid the sandbox was given, when it has one of its own
        self.host_uid: int | None = None

    def close(self) -> None:
        for fd in self.owned_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.owned_fds.clear()


class ProcessLauncher(SandboxBackend):
    """Shared by backends that start the worker as a local child process."""

    @abc.abstractmethod
    def prepare(self, spec: SandboxSpec, channel_fd: int, host_dir: Path) -> Launch:
        """How to start the worker with its channel on ``channel_fd``.

        ``channel_fd`` is -1 for runtimes whose worker connects to a socket instead
        (``runtime.channel == "path"``): the socket is ``host_dir/channel/channel.sock``.
        """

    def make_sandbox(
        self, process: asyncio.subprocess.Process, channel: socket.socket, spec: SandboxSpec,
        sandbox_id: str, host_dir: Path, launch: Launch,
    ) -> Sandbox:
        return Sandbox(process, channel, self.code_mount(spec), sandbox_id=sandbox_id, host_dir=host_dir)

    async def start(self, spec: SandboxSpec) -> Sandbox:
        if spec.runtime.channel == "path":
            return await self._start_listening(spec)
        sandbox_id = new_sandbox_id()
        host_dir = make_host_dir(self.sandbox_root(spec), sandbox_id)
        agent_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        launch: Launch | None = None
        try:
            launch = await asyncio.to_thread(self.prepare, spec, worker_end.fileno(), host_dir)
            # The fds keep their numbers in the child; the worker learns its channel's
            # number from HYAC_CHANNEL_FD.
            process = await asyncio.create_subprocess_exec(
                *launch.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=launch.env,
                pass_fds=(worker_end.fileno(), *launch.pass_fds),
                start_new_session=True,
                cwd="/",
            )
            await self._started(process, launch)
        except BaseException:
            agent_end.close()
            shutil.rmtree(host_dir, ignore_errors=True)
            if launch is not None:
                self.abandon(launch)
            raise
        finally:
            worker_end.close()
            if launch is not None:
                launch.close()
        return self.make_sandbox(process, agent_end, spec, sandbox_id, host_dir, launch)

    def started(self, pid: int, launch: Launch) -> None:
        """Called as soon as the process ``pid`` of ``launch`` runs, before the sandbox is
        handed out; raising stops (and kills) it."""

    async def _started(self, process: asyncio.subprocess.Process, launch: Launch) -> None:
        try:
            # A thread: moving a process between cgroups may wait on the kernel (memory
            # cgroup v1 drains every CPU's page lists), and the sandbox boots meanwhile.
            await asyncio.to_thread(self.started, process.pid, launch)
        except BaseException:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # its own session: the whole tree
            await process.wait()
            raise

    def abandon(self, launch: Launch) -> None:
        """Undo ``prepare`` when the process could not be started."""

    async def _start_listening(self, spec: SandboxSpec) -> Sandbox:
        """Start a worker that connects to a socket the agent listens on (e.g. Deno,
        which cannot adopt an inherited socket); the agent accepts one connection."""
        sandbox_id = new_sandbox_id()
        host_dir = make_host_dir(self.sandbox_root(spec), sandbox_id)
        channel_dir = host_dir / CHANNEL_DIR
        channel_dir.mkdir(mode=0o755)
        os.chmod(channel_dir, 0o755)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dir_fd = os.open(channel_dir, os.O_PATH | os.O_DIRECTORY)
        launch: Launch | None = None
        process: asyncio.subprocess.Process | None = None
        try:
            # Through /proc/self/fd the path stays short whatever the data dir's length.
            listener.bind(f"/proc/self/fd/{dir_fd}/{CHANNEL_NAME}")
            os.chmod(channel_dir / CHANNEL_NAME, 0o666)
            listener.listen(1)
            listener.setblocking(False)
            launch = await asyncio.to_thread(self.prepare, spec, -1, host_dir)
            process = await asyncio.create_subprocess_exec(
                *launch.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=launch.env, pass_fds=launch.pass_fds,
                start_new_session=True, cwd="/",
            )
            await self._started(process, launch)
            loop = asyncio.get_running_loop()
            accept = asyncio.ensure_future(loop.sock_accept(listener))
            exited = asyncio.ensure_future(process.wait())
            done, _ = await asyncio.wait(
                {accept, exited}, timeout=CHANNEL_CONNECT_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if accept not in done:
                accept.cancel()
                exited.cancel()
                err = b""
                if process.stderr is not None and exited in done:
                    err = await process.stderr.read(2000)
                from hyac_common.errors import SandboxUnavailable

                raise SandboxUnavailable(
                    f"the {spec.runtime.name} worker did not connect to its channel: "
                    f"{err.decode(errors='replace').strip() or 'no output'}"
                )
            exited.cancel()
            channel, _ = accept.result()
            channel.setblocking(True)
        except BaseException:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            shutil.rmtree(host_dir, ignore_errors=True)
            if launch is not None:
                self.abandon(launch)
            raise
        finally:
            listener.close()
            os.close(dir_fd)
            with contextlib.suppress(OSError):
                (channel_dir / CHANNEL_NAME).unlink()
            if launch is not None:
                launch.close()
        return self.make_sandbox(process, channel, spec, sandbox_id, host_dir, launch)
