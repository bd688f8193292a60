"""Per-function dependencies: resolved at deploy into a lock, installed once per
(runtime, lock) into a content-addressed environment that every function with the same
lock shares, mounted read-only into its sandboxes.

``requirements`` come from a function's hyac.toml settings and from a
``requirements.txt`` (Python) or ``package.json`` (Node) beside its entry file. See
``DependencyStore`` for the life cycle and ``installers`` for uv, pip and npm.
"""

from hyac_agent.deps.installers import DependencyConflict, InstallFailed
from hyac_agent.deps.store import DependencyStore, Prepared, collect_requirements

__all__ = [
    "DependencyConflict",
    "DependencyStore",
    "InstallFailed",
    "Prepared",
    "collect_requirements",
]
