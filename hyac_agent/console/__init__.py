"""The console: a web window on the platform, served by the agent at ``/console/``.

Plain ES modules and CSS in ``static/`` (no build step, nothing fetched from elsewhere);
the page calls the ``/v1`` API with its session cookie, as the token it signed in with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hyac_agent.core import Agent

__all__ = ["mount_console"]


def mount_console(app: FastAPI, agent: Agent) -> None:
    """Add the console's API routes and its pages and session layer (before the gateway's
    routes, which would read ``/v1/console/x`` as tenant ``v1``'s function)."""
    # Imported here: the routes import the API package, which imports this one.
    from hyac_agent.console import api
    from hyac_agent.console.middleware import ConsoleMiddleware
    from hyac_agent.console.pages import console_pages
    from hyac_agent.console.sessions import ConsoleSessions

    sessions = ConsoleSessions()
    app.state.console_sessions = sessions
    app.include_router(api.router)
    app.add_middleware(ConsoleMiddleware, sessions=sessions, pages=console_pages(agent, sessions))
