"""No isolation at all: the worker is a plain child process of the agent.

For local development on hosts without bubblewrap, and only behind the explicit
``--insecure-no-sandbox`` flag: the function can read everything the agent can.
"""

from __future__ import annotations

from hyac_agent.sandbox.base import ProcessLauncher, SandboxSpec, worker_environment


class InsecureProcessBackend(ProcessLauncher):
    name = "none"
    isolating = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "isolation": "none: functions run as the agent's user"}

    def code_mount(self, spec: SandboxSpec) -> str:
        return str(spec.code_dir)

    def command(self, spec: SandboxSpec, channel_fd: int) -> tuple[list[str], dict[str, str]]:
        env = worker_environment(spec, self.code_mount(spec), channel_fd)
        return spec.runtime.command(str(spec.runtime.folder)), env
