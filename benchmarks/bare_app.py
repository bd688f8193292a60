"""The gateway's baseline: a plain Starlette JSON echo app, served the way uvicorn's and
Starlette's docs say to serve it, from this folder:

    uvicorn bare_app:app --host 127.0.0.1 --port N --no-access-log

Nothing of the agent's own socket or server set-up is copied here: a baseline is what a
user would run instead of Hyac, so a flaw in Hyac's plumbing cannot hide in it too.
(``--no-access-log``: the agent writes no access log either.)
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(await request.json())


app = Starlette(routes=[Route("/", echo, methods=["POST"])])
