"""The errors of dependency installation, each with its code and HTTP status."""

from __future__ import annotations

from hyac_common.errors import HyacError, InvalidInput


class DependencyRefused(InvalidInput):
    """A requirement or lock names a source this agent does not install from."""

    code = "dependency_refused"


class DependencyConflict(InvalidInput):
    """The requirements cannot all be satisfied together."""

    code = "dependency_conflict"


class InstallFailed(HyacError):
    """The installer failed (network, a missing package, a failing build step)."""

    code = "dependency_install_failed"
    status = 422
