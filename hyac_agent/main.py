"""The ``hyac-agent`` command: run the agent daemon, check the host."""

from __future__ import annotations

import faulthandler
import gc
import logging
import math
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer

from hyac_common import HyacError, __version__

app = typer.Typer(
    help="The Hyac agent: stores versioned functions and runs them in sandboxes.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: keeps "[env: …]" visible and start-up quick
)


if TYPE_CHECKING:
    from asyncio import AbstractEventLoop

    from hyac_agent.config import AgentConfig

# Options shared by `serve` and `worker`.
DataDirOption = Annotated[
    Optional[Path], typer.Option(help="State directory [env: HYAC_DATA_DIR].")
]
SandboxOption = Annotated[
    Optional[str], typer.Option(help="Sandbox backend: auto, docker, bwrap, gvisor [env: HYAC_SANDBOX].")
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure-no-sandbox", help="Run functions WITHOUT isolation (local development only)."
    ),
]


def _config(**given: Any) -> AgentConfig:
    """The settings from the command line (the options ``given`` that are not None) and
    the environment, or one line naming what cannot work and exit code 1."""
    from pydantic import ValidationError

    from hyac_agent.config import AgentConfig, config_error

    try:
        return AgentConfig(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as exc:
        _fail(config_error(exc))


def _base_config(
    data_dir: Path | None, sandbox: str | None, insecure_no_sandbox: bool, **given: Any
) -> AgentConfig:
    """The settings both daemons share, with logging set up and the insecure mode announced."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = _config(data_dir=data_dir, sandbox=sandbox, insecure_no_sandbox=insecure_no_sandbox,
                     **given)
    if insecure_no_sandbox:
        typer.secho(
            "WARNING: --insecure-no-sandbox: functions run unisolated with this agent's "
            "rights. Never use it for code you do not trust.",
            fg="red", err=True,
        )
    return config


def _fail(message: str) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Address to listen on [env: HYAC_HOST]."),
    port: Optional[int] = typer.Option(None, help="Port; 0 picks a free one [env: HYAC_PORT]."),
    data_dir: DataDirOption = None,
    sandbox: SandboxOption = None,
    insecure_no_sandbox: InsecureOption = False,
    idle_timeout: Optional[float] = typer.Option(
        None, help="Seconds before an idle worker is stopped [env: HYAC_WORKER_IDLE_TIMEOUT]."
    ),
) -> None:
    """Run the agent in the foreground until interrupted."""
    import uvicorn

    from hyac_agent.api import create_app
    from hyac_agent.core import Agent
    from hyac_agent.edge import tls as edge_tls
    from hyac_agent.listener import listening_socket, local_url
    from hyac_common.paths import agent_state_path, write_private_json

    config = _base_config(data_dir, sandbox, insecure_no_sandbox, host=host, port=port,
                          worker_idle_timeout=idle_timeout)
    try:
        agent = Agent(config)
    except HyacError as exc:
        _fail(exc.message)
    try:
        sock = listening_socket(config.host, config.port)
    except OSError as exc:
        _fail(f"cannot listen on {config.host}:{config.port}: {exc.strerror}")
    url = local_url(config.host, sock)
    shown_host = f"[{config.host}]" if ":" in config.host else config.host
    bound = f"{shown_host}:{sock.getsockname()[1]}"
    # A wildcard is where the agent listens; its URL is where this host's clients connect.
    listening = url if url.endswith(f"//{bound}") else f"{bound}, {url} on this host"
    state_path = agent_state_path(config.data_dir)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(agent, url), log_level="warning", access_log=False, lifespan="on",
            proxy_headers=False,  # forwarded headers: the edge believes trusted proxies only
            # SIGTERM: requests in flight get this long to finish (HYAC_SHUTDOWN_GRACE).
            timeout_graceful_shutdown=max(math.ceil(config.shutdown_grace), 0),
            timeout_keep_alive=config.keep_alive_timeout,  # HYAC_KEEP_ALIVE_TIMEOUT
        )
    )
    original_startup = server.startup
    original_shutdown = server.shutdown

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original_startup(sockets=sockets)
        # SIGUSR1 also lists the event loop's tasks with where each one waits (after the
        # threads' stacks, which faulthandler writes even when the loop is stuck).
        import asyncio

        loop = asyncio.get_running_loop()
        faulthandler.unregister(signal.SIGUSR1)  # registered again below, on top of this
        loop.add_signal_handler(signal.SIGUSR1, _write_task_stacks, loop)
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)
        await edge_tls.https.start(server.config.app, config.host)  # HYAC_TLS_PORT
        # Written only once the socket accepts requests: its presence means "ready".
        state = {"url": url, "token": agent.token, "pid": os.getpid(), "version": __version__,
                 "sandbox": agent.backend.name, "shutdown_grace": config.shutdown_grace}
        if edge_tls.https.port is not None:
            state["https_port"] = edge_tls.https.port
        # What start-up built (modules, the app, settings) lives as long as the agent:
        # frozen, the collector's full passes skip it. Those passes over the whole heap
        # stopped the event loop for tens of milliseconds under load (gateway p99 at 64
        # connections 97 ms, 43 ms frozen).
        gc.collect()
        gc.freeze()
        write_private_json(state_path, state)
        logging.getLogger("hyac.agent").info(
            "listening on %s (sandbox: %s, data: %s)", listening, agent.backend.name,
            config.data_dir
        )

    async def shutdown(sockets: list[socket.socket] | None = None) -> None:
        # Background tasks go back to the queue at once, not after the grace period
        # the sync requests in flight get, nor after a lease runs out.
        try:
            await agent.begin_shutdown()
        except Exception:  # the store is unreachable: the leases will run out instead
            logging.getLogger("hyac.agent").exception("could not hand tasks back")
        await edge_tls.https.stop()
        await original_shutdown(sockets=sockets)
        # Here, not only after run(): uvicorn raises a SIGTERM or SIGINT again once it
        # has served, and the default handler ends the process before run() returns.
        forget_state()

    def forget_state() -> None:
        """agent.json goes with the agent that wrote it (not with one started since)."""
        try:
            from hyac_common.paths import read_agent_state

            state = read_agent_state(config.data_dir)
            if state and state.get("pid") == os.getpid():
                state_path.unlink()
        except OSError:
            pass

    server.startup = startup  # type: ignore[method-assign]
    server.shutdown = shutdown  # type: ignore[method-assign]
    # SIGUSR1 writes every thread's stack to stderr (the agent's log) and the agent goes
    # on: what a stuck agent is doing, without stopping it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        server.run(sockets=[sock])
    finally:
        forget_state()
    if not server.started:
        sys.exit(1)


def _write_task_stacks(loop: AbstractEventLoop) -> None:
    """Every task of ``loop`` and where it waits, to stderr (the agent's log)."""
    import asyncio
    import io

    tasks = list(asyncio.all_tasks(loop))
    out = io.StringIO()
    out.write(f"asyncio tasks ({len(tasks)}):\n")
    for task in tasks:
        task.print_stack(limit=8, file=out)
    sys.stderr.write(out.getvalue())
    sys.stderr.flush()


@app.command()
def doctor(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Report which sandbox backends work here, which isolation features are in force,
    and what to install for the rest."""
    import json

    from hyac_agent.sandbox.doctor import render, report

    data = report(_config())
    if json_output:
        typer.echo(json.dumps(data, indent=2))
        return
    for line in render(data):
        typer.echo(line)


images_app = typer.Typer(help="Runtime images for the docker sandbox.", no_args_is_help=True)
app.add_typer(images_app, name="images")


@images_app.command("build")
def images_build(
    base: Optional[str] = typer.Option(
        None, help="Base image (e.g. python:3.12-slim). Default: a Debian base made offline."
    ),
    python: Optional[str] = typer.Option(None, help="Python version the image holds, e.g. 3.11."),
    runtime: Optional[str] = typer.Option(
        None, help="Build another runtime's image instead, e.g. java17 (its packages come "
        "from Debian's mirror)."
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the images exist."),
) -> None:
    """Build the python runtime image (offline by default: debootstrap + docker import)."""
    from hyac_agent.images import build_family_image, build_runtime_image

    image = _config().docker_image
    try:
        if runtime:
            build_family_image(runtime, base=base, force=force, say=typer.echo)
        else:
            build_runtime_image(image, base=base, python=python, force=force,
                                say=typer.echo)
    except HyacError as exc:
        _fail(exc.message)
    except Exception as exc:  # the daemon is missing or refused
        _fail(f"{type(exc).__name__}: {exc}")


@app.command()
def worker(
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", "-c", min=1,
        help="Tasks run at once by this worker [env: HYAC_TASK_CONCURRENCY].",
    ),
    data_dir: DataDirOption = None,
    sandbox: SandboxOption = None,
    insecure_no_sandbox: InsecureOption = False,
    loglevel: str = typer.Option(
        "INFO", "--loglevel", "-l",
        help="DEBUG, INFO (a line per task received and ended), WARNING, ERROR or CRITICAL.",
    ),
) -> None:
    """Run background tasks from the broker (HYAC_QUEUE=celery), on this or any host.

    Workers share the store (HYAC_DATABASE_URL, PostgreSQL: it keeps the bundles too),
    the broker (HYAC_BROKER_URL) and DATA_DIR/secrets.key with the agents."""
    from hyac_agent.core import Agent
    from hyac_agent.tasks.celery_queue import run_worker

    level = loglevel.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        _fail(f"--loglevel: {loglevel!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    config = _base_config(data_dir, sandbox, insecure_no_sandbox, task_concurrency=concurrency)
    logging.getLogger().setLevel(level)
    if config.tasks.engine != "celery":
        _fail("hyac-agent worker runs tasks from a broker: set HYAC_QUEUE=celery "
              "(and HYAC_BROKER_URL, HYAC_DATABASE_URL); the embedded queue needs no worker")
    if config.resolved_database_url().startswith("sqlite"):
        logging.getLogger("hyac.agent").warning(
            "worker on SQLite (%s): only processes on this host can share it; use "
            "PostgreSQL (HYAC_DATABASE_URL) for workers on other hosts",
            config.resolved_database_url(),
        )
    try:
        agent = Agent(config)
    except HyacError as exc:
        _fail(exc.message)
    run_worker(agent, config.tasks.concurrency, loglevel=level)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


from hyac_agent.vulns.cli import app as vulndb_app  # noqa: E402 - beside its registration

app.add_typer(vulndb_app, name="vulndb")

from hyac_agent.integrations.cli import app as storage_app  # noqa: E402 - beside its registration

app.add_typer(storage_app, name="storage")


def run() -> None:
    app()
