"""Sandbox backends and the choice between them."""

from __future__ import annotations

from hyac_agent.sandbox.base import Sandbox, SandboxBackend, SandboxSpec
from hyac_agent.sandbox.bubblewrap import BubblewrapBackend
from hyac_agent.sandbox.process import InsecureProcessBackend
from hyac_common.errors import SandboxUnavailable

BACKENDS: dict[str, type[SandboxBackend]] = {
    BubblewrapBackend.name: BubblewrapBackend,
    InsecureProcessBackend.name: InsecureProcessBackend,
}


def select_backend(choice: str, insecure_no_sandbox: bool) -> SandboxBackend:
    """The backend to use: ``choice`` is "auto" or a backend name.

    Never falls back to no isolation silently: that needs ``insecure_no_sandbox``.
    """
    if insecure_no_sandbox or choice == "none":
        if not insecure_no_sandbox:
            raise SandboxUnavailable(
                "sandbox 'none' runs functions unisolated; it needs --insecure-no-sandbox"
            )
        return InsecureProcessBackend()
    name = "bwrap" if choice == "auto" else choice
    backend_cls = BACKENDS.get(name)
    if backend_cls is None:
        raise SandboxUnavailable(f"unknown sandbox backend {choice!r}; choose from: bwrap, none")
    reason = backend_cls.unavailable_reason()
    if reason:
        raise SandboxUnavailable(reason)
    return backend_cls()


__all__ = ["BACKENDS", "Sandbox", "SandboxBackend", "SandboxSpec", "select_backend"]
