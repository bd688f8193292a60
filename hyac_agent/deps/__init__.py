"""Per-function dependencies: resolved at deploy into a lock, installed once per
(runtime, lock) into a content-addressed environment that every function with the same
lock shares, mounted read-only into its sandboxes.

``requirements`` come from a function's hyac.toml settings and from a
``requirements.txt`` (Python) or ``package.json`` (Node) beside its entry file. See
``policy`` for what a tenant may ask for, ``DependencyStore`` for the life cycle,
``installers`` for uv, pip and npm, and ``sandbox`` for where package code runs (never
with a network).
"""

from hyac_agent.deps.store import DependencyStore, Prepared, check_client_lock, collect_requirements
from hyac_common.errors import DependencyConflict, DependencyRefused, InstallFailed

__all__ = [
    "DependencyConflict",
    "DependencyRefused",
    "DependencyStore",
    "InstallFailed",
    "Prepared",
    "check_client_lock",
    "collect_requirements",
]
