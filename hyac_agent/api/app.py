"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from hyac_agent.api import (
    gateway,
    routes_audit,
    routes_editor,
    routes_env,
    routes_functions,
    routes_integrations,
    routes_logs,
    routes_metrics,
    routes_notify,
    routes_quotas,
    routes_runtimes,
    routes_secrets,
    routes_storage,
    routes_tasks,
    routes_templates,
    routes_tenants,
    routes_tokens,
    routes_users,
    routes_vulns,
)
from hyac_agent.api.deps import get_agent, get_principal
from hyac_agent.api.errors import COMMON_ERRORS, INVOKE_ERRORS, install_error_handlers
from hyac_agent.api.fast_invoke import InvokeFastPath
from hyac_agent.api.limits import BodyLimitMiddleware
from hyac_agent.api.streams import StreamSlots
from hyac_agent.console import mount_console
from hyac_agent.core import Agent
from hyac_agent.edge import install_edge
from hyac_agent.tenancy import Principal
from hyac_agent.tenancy.audit import AuditMiddleware
from hyac_agent.triggers.routes import install_triggers
from hyac_common import __version__
from hyac_common.wire import AgentInfo


class AgentApp(FastAPI):
    """FastAPI with a front of the agent's own ahead of FastAPI's middleware stack:
    request body limits, custom domains and the gateway, which answers its own errors
    (``gateway.GatewayFastPath``), and the plain invoke API request
    (``fast_invoke.InvokeFastPath``). What the front does not answer goes on through
    FastAPI (``inner``). On the gateway, the hottest path, each layer of FastAPI's stack
    (error, telemetry and body-limit middleware, each wrapping ``send``) was a cost of
    every request."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await self.front(scope, receive, send)

    async def inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(agent: Agent, url: str = "") -> AgentApp:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await agent.start()
        try:
            yield
        finally:
            await agent.stop()

    app = AgentApp(title="Hyac agent", version=__version__, lifespan=lifespan,
                  responses=COMMON_ERRORS)
    app.state.agent = agent
    app.state.stream_slots = StreamSlots(agent.config.streams_per_user)
    app.state.url = url
    install_error_handlers(app)

    @app.get("/v1/health", tags=["agent"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/v1/agent", response_model=AgentInfo, response_model_exclude_none=True,
             tags=["agent"])
    async def agent_info(
        principal: Principal = Depends(get_principal), current: Agent = Depends(get_agent)
    ) -> AgentInfo:
        # The process, its data dir and its pools are the platform's business: any other
        # token learns that the agent runs and which version, as /v1/health tells anyone.
        if not principal.owner or principal.scope is not None:
            return AgentInfo(running=True, version=__version__)
        import os

        from hyac_agent.edge import tls as edge_tls

        return AgentInfo(
            running=True,
            url=app.state.url,
            version=__version__,
            pid=os.getpid(),
            sandbox=current.backend.name,
            data_dir=str(current.config.data_dir),
            extra={"isolation": current.backend.describe(), "pool": current.pool.stats(),
                   "tasks": current.queue.stats(), "https_port": edge_tls.https.port},
        )

    app.include_router(routes_functions.router)
    app.include_router(routes_logs.router)
    app.include_router(routes_tasks.router)
    app.include_router(routes_runtimes.router)
    app.include_router(routes_metrics.router)
    app.include_router(routes_vulns.router)
    app.include_router(routes_notify.router)
    app.include_router(routes_templates.router)
    app.include_router(routes_integrations.router)
    app.include_router(routes_editor.router)
    for tenancy_router in (routes_tenants, routes_users, routes_tokens, routes_quotas,
                           routes_secrets, routes_env, routes_audit, routes_storage):
        app.include_router(tenancy_router.router)
    install_edge(app, agent)
    install_triggers(app)
    mount_console(app, agent)
    # last: its routes match any /{a}/{b}
    app.include_router(gateway.router, responses=INVOKE_ERRORS)
    app.add_middleware(AuditMiddleware)
    app.front = BodyLimitMiddleware(
        gateway.GatewayFastPath(InvokeFastPath(app.inner)),
        body_limit=agent.config.max_body_bytes,
        bundle_limit=agent.config.max_bundle_bytes,
        uploads={"/v1/system/vulndb/import": (
            agent.config.vulndb_max_upload_bytes,
            "the advisory file is larger than the agent takes (HYAC_VULNDB_MAX_UPLOAD_BYTES)")},
    )
    return app
