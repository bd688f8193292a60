"""Wiring the edge into the agent's application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from hyac_agent.edge.service import Verdict

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hyac_agent.core import Agent

__all__ = ["Verdict", "admit", "forget_edge", "install_edge"]


def install_edge(app: FastAPI, agent: Agent) -> None:
    """Make the edge service (``app.state.edge``) and mount its API."""
    from hyac_agent.api import routes_edge
    from hyac_agent.edge.service import EdgeService

    app.state.edge = EdgeService(agent)
    app.include_router(routes_edge.router)
    app.include_router(routes_edge.domains_router)


async def admit(request: Request, tenant: str, function: str, domain: str | None = None) -> Verdict:
    """The gateway's question (see ``EdgeService.admit``); without an edge (an
    application made without ``install_edge``) every request is let through."""
    edge = getattr(request.app.state, "edge", None)
    if edge is None:
        return Verdict(request.client.host if request.client else "", dict(request.headers))
    return await edge.admit(request, tenant, function, domain)  # type: ignore[no-any-return]


async def forget_edge(request: Request, tenant: str, function: str | None = None) -> None:
    """A function (``function`` None: a tenant) was removed, its edge settings with it
    in the store: the gateway stops applying them now, not at its next refresh."""
    edge = getattr(request.app.state, "edge", None)
    if edge is not None:
        await edge.forget(tenant, function)
