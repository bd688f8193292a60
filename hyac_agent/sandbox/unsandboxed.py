"""No isolation at all: the worker is a plain child process of the agent.

For local development on hosts without bubblewrap, and only behind the explicit
``--insecure-no-sandbox`` flag: the function can read everything the agent can. Python
workers get an accident guard (runtimes/python/_hyac_guard.py, a PEP 578 audit hook,
turned on by ``HYAC_GUARD=1``) that refuses files outside the function's code,
dependencies, interpreter and private temp dir (``TMPDIR``), subprocesses, network and
ctypes. It is no security boundary.
"""

from __future__ import annotations

from pathlib import Path

from hyac_agent.sandbox.base import Sandbox, SandboxSpec, worker_environment
from hyac_agent.sandbox.launcher import Launch, ProcessLauncher


class InsecureProcessBackend(ProcessLauncher):
    name = "none"
    isolating = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "isolation": "none: functions run as the agent's user"}

    def prepare(self, spec: SandboxSpec, channel_fd: int, host_dir: Path) -> Launch:
        code = str(host_dir / "code")
        channel = str(host_dir / "channel" / "channel.sock") if channel_fd < 0 else ""
        env = worker_environment(spec, code, channel_fd, channel)
        temp = host_dir / "tmp"
        temp.mkdir(mode=0o700, exist_ok=True)
        env.update(TMPDIR=str(temp), HYAC_GUARD="1")
        if spec.deps_dir is not None:
            # No mounts here: the environment is reached at its host path.
            for key, value in spec.runtime.environment(True).items():
                if spec.runtime.deps_mount in value:
                    env[key] = value.replace(spec.runtime.deps_mount, str(spec.deps_source))
        argv = spec.runtime.command(
            str(spec.runtime.folder), channel=channel, deps=spec.deps_dir is not None, code=code,
            memory_bytes=spec.limits.memory_bytes,
        )
        return Launch(argv, env)

    def make_sandbox(self, process, channel, spec, sandbox_id, host_dir, launch):  # type: ignore[no-untyped-def]
        return Sandbox(process, channel, str(host_dir / "code"), sandbox_id=sandbox_id, host_dir=host_dir)
