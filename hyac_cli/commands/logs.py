"""``hyac logs``: print stored log lines, or follow them live."""

import time
from typing import Annotated, Any

import typer

from hyac_cli import options
from hyac_cli.following import read_events

__all__ = ["logs", "read_events"]

STREAM_STYLES = {"stdout": None, "stderr": "red", "logger": "cyan", "system": "yellow"}
LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red", "DEBUG": "dim"}


def logs(
    name: Annotated[
        str | None,
        typer.Argument(show_default=False, help="Only this function's lines (default: all)."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines as they come.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", "-s", show_default=False,
                     help="Only lines newer than this, e.g. 10m, 2h, 1d."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many stored lines.")
    ] = 100,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Show the log lines of functions: prints, stderr and context.logger.

    With --json, each line is one JSON object (JSON Lines). Ctrl-C stops --follow.
    """
    from hyac_cli import client
    from hyac_cli.following import Follower
    from hyac_cli.terminal import Terminal
    from hyac_common.durations import parse_duration
    from hyac_common.names import validate_name

    if name is not None:
        validate_name(name)
    since_ts = time.time() - parse_duration(since, "--since") if since else None
    term = Terminal()
    params: dict[str, Any] = {"limit": limit}
    if name:
        params["function"] = name
    if since_ts is not None:
        params["since"] = since_ts
    printed = _Printer(term, as_json)
    started = time.time()
    try:
        with client.connect(tenant=options.tenant_of(tenant)) as agent:
            records = agent.get("/v1/logs", params=params) or []
            if name and not records:
                # Nothing logged: a typo'd name is an error, not an empty screen.
                agent.get(f"/v1/functions/{name}")
        for record in records:
            printed(record)
        if not follow:
            return
        stream_params = {k: v for k, v in params.items() if k != "limit"}

        def open_stream(agent: Any) -> Any:
            # The cursor: the time of the last line printed (the printer drops the lines
            # at that very time it has already shown), so a reconnection neither repeats
            # nor skips a line.
            stream_params["since"] = printed.last_ts if printed.last_ts is not None else (
                since_ts if since_ts is not None else started
            )
            return agent.stream_lines("/v1/logs/stream", params=stream_params)

        follower = Follower(term, options.tenant_of(tenant), "the agent closed the log stream")
        for record in follower.events(open_stream):
            printed(record, live=True)
    except KeyboardInterrupt:
        return


def format_time(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts).isoformat(timespec="milliseconds")


class _Printer:
    """Prints records once each; the stream may repeat the last ones already listed."""

    def __init__(self, term: Any, as_json: bool) -> None:
        self.term = term
        self.as_json = as_json
        self.last_ts: float | None = None
        self._at_last: set[tuple[Any, ...]] = set()

    def __call__(self, record: dict[str, Any], *, live: bool = False) -> None:
        ts = float(record.get("ts", 0.0))
        key = (record.get("request_id"), record.get("stream"), record.get("message"),
               record.get("function"), record.get("version"))
        if live and self.last_ts is not None and (
            ts < self.last_ts or (ts == self.last_ts and key in self._at_last)
        ):
            return  # already shown: listed before following began, or before a reconnection
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts, self._at_last = ts, {key}
        elif ts == self.last_ts:
            self._at_last.add(key)
        if self.as_json:
            self.term.print_json(record, compact=True)
            return
        stream = str(record.get("stream", ""))
        level = record.get("level")
        parts: list[tuple[str, str | None]] = [
            (format_time(ts), "dim"),
            (f" {record.get('function', '?')} v{record.get('version', '?')} ", None),
            (f"{record.get('request_id') or '-'} ", "dim"),
            (f"{stream:<6}  ", STREAM_STYLES.get(stream)),
        ]
        if level:
            parts.append((f"{level} ", LEVEL_STYLES.get(str(level), "cyan")))
        parts.append((str(record.get("message", "")), None))
        self.term.styled(parts)
