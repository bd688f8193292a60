"""The ``hyac`` command line: scaffold, deploy, invoke and tail serverless functions.

Importing this package stays cheap (no httpx, pydantic or rich tables) so that
``hyac --help`` answers at once; commands import what they need when they run.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
