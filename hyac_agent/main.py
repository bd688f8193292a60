"""The ``hyac-agent`` command: run the agent daemon, check the host."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from typing import Optional

import typer

from hyac_common import HyacError, __version__

app = typer.Typer(
    help="The Hyac agent: stores versioned functions and runs them in sandboxes.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Address to listen on [env: HYAC_HOST]."),
    port: Optional[int] = typer.Option(None, help="Port; 0 picks a free one [env: HYAC_PORT]."),
    data_dir: Optional[Path] = typer.Option(None, help="State directory [env: HYAC_DATA_DIR]."),
    sandbox: Optional[str] = typer.Option(
        None, help="Sandbox backend: auto, bwrap [env: HYAC_SANDBOX]."
    ),
    insecure_no_sandbox: bool = typer.Option(
        False, "--insecure-no-sandbox",
        help="Run functions WITHOUT isolation (local development only).",
    ),
    idle_timeout: Optional[float] = typer.Option(
        None, help="Seconds before an idle worker is stopped [env: HYAC_WORKER_IDLE_TIMEOUT]."
    ),
) -> None:
    """Run the agent in the foreground until interrupted."""
    import uvicorn

    from hyac_agent.api import create_app
    from hyac_agent.config import AgentConfig
    from hyac_agent.core import Agent
    from hyac_common.paths import agent_state_path, write_private_json

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = AgentConfig(insecure_no_sandbox=insecure_no_sandbox)
    if host is not None:
        config.host = host
    if port is not None:
        config.port = port
    if data_dir is not None:
        config.data_dir = data_dir
    if sandbox is not None:
        config.sandbox = sandbox
    if idle_timeout is not None:
        config.worker_idle_timeout = idle_timeout
    if insecure_no_sandbox:
        typer.secho(
            "WARNING: --insecure-no-sandbox: functions run unisolated with this agent's "
            "rights. Never use it for code you do not trust.",
            fg="red", err=True,
        )
    try:
        agent = Agent(config)
    except HyacError as exc:
        _fail(exc.message)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except OSError as exc:
        _fail(f"cannot listen on {config.host}:{config.port}: {exc.strerror}")
    bound_port = sock.getsockname()[1]
    shown_host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{shown_host}:{bound_port}"
    state_path = agent_state_path(config.data_dir)
    server = uvicorn.Server(
        uvicorn.Config(create_app(agent, url), log_level="warning", access_log=False, lifespan="on")
    )
    original_startup = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original_startup(sockets=sockets)
        # Written only once the socket accepts requests: its presence means "ready".
        write_private_json(
            state_path,
            {"url": url, "token": agent.token, "pid": os.getpid(), "version": __version__,
             "sandbox": agent.backend.name},
        )
        logging.getLogger("hyac.agent").info(
            "listening on %s (sandbox: %s, data: %s)", url, agent.backend.name, config.data_dir
        )

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run(sockets=[sock])
    finally:
        try:
            from hyac_common.paths import read_agent_state

            state = read_agent_state(config.data_dir)
            if state and state.get("pid") == os.getpid():
                state_path.unlink()
        except OSError:
            pass
    if not server.started:
        sys.exit(1)


@app.command()
def doctor(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Report which sandbox backends and runtimes work on this host."""
    import json

    from hyac_agent import runtimes
    from hyac_agent.sandbox import BACKENDS

    report = {
        "version": __version__,
        "backends": {
            name: {"available": cls.unavailable_reason() is None, "reason": cls.unavailable_reason()}
            for name, cls in BACKENDS.items()
        },
        "runtimes": runtimes.available(),
    }
    if json_output:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"hyac-agent {__version__}")
    for name, info in report["backends"].items():
        state = "ok" if info["available"] else f"unavailable: {info['reason']}"
        typer.echo(f"  sandbox {name:6} {state}")
    for name, path in report["runtimes"].items():
        typer.echo(f"  runtime {name:10} {path or 'not installed'}")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def run() -> None:
    app()
