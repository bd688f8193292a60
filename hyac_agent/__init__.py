"""The Hyac agent: stores versioned functions and runs them in sandboxes."""

from hyac_common import __version__

__all__ = ["__version__"]
