"""The agent's HTTP API (FastAPI): routes translate HTTP to service calls and errors back."""

from hyac_agent.api.app import create_app

__all__ = ["create_app"]
