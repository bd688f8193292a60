"""Shared by the ``hyac`` CLI and the ``hyac-agent`` daemon: errors, names, wire models.

Kept free of heavy imports: the CLI imports it on every start.
"""

from hyac_common.errors import HyacError

__all__ = ["HyacError"]
__version__ = "0.1.0"
