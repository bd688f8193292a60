"""``hyac agent up|down|status``: run the local agent in the background."""

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hyac_cli import options

app = typer.Typer(
    help="Start, stop and check the local agent.", no_args_is_help=True, rich_markup_mode=None
)

LOG_FILE = "agent.log"
START_TIMEOUT = 30.0
#: waited for beyond the agent's own grace period (HYAC_SHUTDOWN_GRACE) before a kill
STOP_MARGIN = 10.0
DEFAULT_GRACE = 10.0


@app.command()
def up(
    port: Annotated[
        int, typer.Option("--port", "-p", envvar="HYAC_PORT", min=0, max=65535,
                          help="Port to listen on; 0 picks a free one.")
    ] = 8040,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    insecure_no_sandbox: Annotated[
        bool,
        typer.Option("--insecure-no-sandbox",
                     help="Run functions WITHOUT isolation (local development only)."),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for the agent to answer.")
    ] = START_TIMEOUT,
) -> None:
    """Start the agent in the background and wait until it answers."""
    import subprocess

    from hyac_cli.client import health
    from hyac_cli.terminal import Terminal
    from hyac_common.paths import agent_state_path, data_dir, read_agent_state

    term = Terminal()
    state = read_agent_state()
    if state and state.get("url") and _alive(state.get("pid")) and health(str(state["url"])):
        term.say(f"The agent is already running at {state['url']} (pid {state.get('pid')}).")
        return
    state_path = agent_state_path()
    state_path.unlink(missing_ok=True)  # stale: its agent is gone

    log_path = data_dir() / LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    command = [sys.executable, "-m", "hyac_agent", "serve", "--host", host, "--port", str(port)]
    if insecure_no_sandbox:
        command.append("--insecure-no-sandbox")
    with log_path.open("ab") as log:
        offset = log.tell()
        log.write(f"--- hyac agent up at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    try:
        state = _wait_until_ready(process, log_path, offset, timeout, term)
    finally:
        _let_go(process)
    term.say(f"The agent is running at {state['url']} (pid {state.get('pid', process.pid)}).")
    term.note(f"log: {log_path}")


def _wait_until_ready(
    process: Any, log_path: Path, offset: int, timeout: float, term: Any
) -> dict[str, Any]:
    from hyac_cli.client import health
    from hyac_common.errors import HyacError
    from hyac_common.paths import read_agent_state

    deadline = time.monotonic() + timeout
    with term.status("starting the agent…"):
        while True:
            if process.poll() is not None:
                raise HyacError(
                    f"the agent exited with status {process.returncode} while starting: "
                    f"{_reason(_log_tail(log_path, offset))} (log: {log_path})"
                )
            # The agent writes agent.json once it accepts requests; an older file would
            # name another process.
            state = read_agent_state()
            if state and state.get("pid") == process.pid and state.get("url"):
                if health(str(state["url"]), timeout=1.0):
                    return state
            if time.monotonic() > deadline:
                raise HyacError(
                    f"the agent did not answer within {timeout:g}s (pid {process.pid}); "
                    f"see {log_path}"
                )
            time.sleep(0.1)


def _let_go(process: Any) -> None:
    """The agent outlives this command: stop tracking it, or Popen warns it still runs."""
    if process.poll() is None:
        process.returncode = 0  # never waited for: init reaps it once we have exited


@app.command()
def down(
    timeout: Annotated[
        Optional[float],
        typer.Option("--timeout", min=1, help="Seconds to wait before killing it "
                     "[default: the agent's grace period (HYAC_SHUTDOWN_GRACE) + 10]."),
    ] = None,
) -> None:
    """Stop the local agent: it stops accepting, lets requests in flight finish within
    its grace period and hands running background tasks back to the queue."""
    import signal

    from hyac_cli.terminal import Terminal
    from hyac_common.paths import agent_state_path, read_agent_state

    term = Terminal()
    state = read_agent_state()
    pid = state.get("pid") if state else None
    if not isinstance(pid, int) or not _alive(pid):
        agent_state_path().unlink(missing_ok=True)
        term.say("No agent is running.")
        return
    if timeout is None:
        grace = state.get("shutdown_grace") if state else None
        timeout = (grace if isinstance(grace, (int, float)) else DEFAULT_GRACE) + STOP_MARGIN
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with term.status(f"stopping the agent (pid {pid})…"):
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        term.warn(f"the agent did not stop within {timeout:g}s; killed it")
    agent_state_path().unlink(missing_ok=True)
    term.say(f"The agent (pid {pid}) has stopped.")


@app.command()
def status(as_json: options.Json = False) -> None:
    """Tell whether the agent is running; exits 1 when it is not."""
    from hyac_cli.terminal import Terminal

    term = Terminal()
    report = agent_status()
    if as_json:
        term.print_json(report)
    elif report["running"]:
        details = ", ".join(
            f"{key} {report[key]}" for key in ("pid", "version", "sandbox") if report.get(key)
        ) + (f", HTTPS on port {report['https_port']}" if report.get("https_port") else "")
        suffix = f" ({details})." if details else "."
        term.say(f"The agent is running at {report['url']}{suffix}")
    else:
        where = f" at {report['url']}" if report.get("url") else ""
        term.say(f"No agent is running{where}. Start one with `hyac agent up`.")
    if not report["running"]:
        raise typer.Exit(1)


def agent_status() -> dict[str, Any]:
    """``{"running", "url", "pid", ...}`` for the configured agent (HYAC_URL or agent.json)."""
    from hyac_cli import client
    from hyac_common.errors import AgentUnreachable, HyacError
    from hyac_common.paths import data_dir, read_agent_state

    state = read_agent_state() or {}
    report: dict[str, Any] = {
        "running": False, "url": None, "pid": None, "version": None, "sandbox": None,
        "data_dir": str(data_dir()),
        # the port of the HTTPS listener for custom domains (HYAC_TLS_PORT); None: off
        "https_port": None,
    }
    try:
        endpoint = client.resolve_endpoint()
    except AgentUnreachable:
        return report
    report["url"] = endpoint.url
    local = client.same_url(state.get("url"), endpoint.url)
    if local:
        report.update({k: state.get(k) for k in ("pid", "version", "sandbox", "https_port")})
        if not _alive(report["pid"]):
            return report
    answer = client.health(endpoint.url)
    if answer is None:
        return report
    report["running"] = True
    report["version"] = answer.get("version") or report["version"]
    try:
        with client.connect(timeout=5.0) as agent:
            info = agent.get("/v1/agent") or {}
    except HyacError:
        return report
    for key in ("pid", "version", "sandbox", "data_dir"):
        if info.get(key) is not None:
            report[key] = info[key]
    if isinstance(info.get("extra"), dict) and "https_port" in info["extra"]:
        report["https_port"] = info["extra"]["https_port"]
    return report


def _alive(pid: Any | None) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    # A child we started and that died stays a zombie until reaped; it is not running.
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _log_tail(path: Path, offset: int, lines: int = 20) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    tail = [line for line in text.splitlines() if not line.startswith("--- hyac agent up")]
    return "\n".join(tail[-lines:]) or "(the log is empty)"


def _reason(log: str) -> str:
    """The agent's own one-line error from its log, else the log's last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line.removeprefix("Error: ")
    return lines[-1] if lines else "(the log is empty)"
