"""``hyac tasks``: list, show, watch, cancel and retry background tasks."""

import time
from typing import Annotated, Any

import typer

from hyac_cli import options
from hyac_common.tasks import TERMINAL, WAITING, TaskStatus

app = typer.Typer(
    help="Background tasks: queued invocations with retries, progress and results.",
    no_args_is_help=True,
)

STATUS_STYLES = {
    TaskStatus.QUEUED: "dim", TaskStatus.RUNNING: "cyan", TaskStatus.SUCCEEDED: "green",
    TaskStatus.FAILED: "yellow", TaskStatus.DEAD: "bold red", TaskStatus.CANCELLED: "magenta",
}

TaskId = Annotated[str, typer.Argument(help="The task id (task_…).", show_default=False)]


@app.command("ls")
def ls(
    function: Annotated[
        str | None, typer.Option("--function", "-f", show_default=False,
                                 help="Only this function's tasks.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", "-s", show_default=False,
                                 help="Only tasks in this status (queued, running, succeeded, "
                                      "failed, dead, cancelled).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000,
                                       help="At most this many, newest first.")] = 50,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """List recent tasks, newest first."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    params: dict[str, Any] = {"limit": limit}
    if function:
        params["function"] = function
    if status:
        params["status"] = status
    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        tasks = agent.get("/v1/tasks", params=params) or []
    if as_json:
        term.print_json(tasks)
        return
    rows = [
        [t["id"], t["function"], f"v{t['version']}", t["status"],
         f"{t['attempt']}/{t['max_attempts']}", _progress(t), _age(t["created_at"]),
         _duration(t)]
        for t in tasks
    ]
    term.table(["id", "function", "version", "status", "attempt", "progress", "created",
                "took"], rows, empty="no tasks")


@app.command("show")
def show(task_id: TaskId, tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Show one task: status, attempts, timings, and its result or error."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        task = agent.get(f"/v1/tasks/{client.segment(task_id, 'task id')}")
    if as_json:
        term.print_json(task)
        return
    _describe(term, task)


@app.command("watch")
def watch(task_id: TaskId, tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Follow a task live (a progress bar), then print its result.

    Exits 1 if the task ends dead or cancelled, with the error on stderr.
    """
    from hyac_cli import client
    from hyac_cli.following import Follower
    from hyac_cli.terminal import Terminal

    term = Terminal()
    path = f"/v1/tasks/{client.segment(task_id, 'task id')}/events"
    # Each event is the whole task, so a reconnected stream resumes where it was.
    follower = Follower(term, options.tenant_of(tenant),
                        "the agent closed the task's event stream before the task ended")
    final: dict[str, Any] | None = None
    with _ProgressView(term) as view:
        try:
            for task in follower.events(lambda agent: agent.stream_lines(path)):
                view.update(task)
                if task.get("status") in TERMINAL:
                    final = task
                    break
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    assert final is not None  # the follower returns only through an ended task
    _finish(term, final, as_json)


@app.command("cancel")
def cancel(task_id: TaskId, tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Cancel a task: a queued one never runs, a running one is stopped."""
    _act(task_id, "cancel", "cancelled", tenant, as_json)


@app.command("retry")
def retry(task_id: TaskId, tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Queue a dead or cancelled task again, with its retries renewed."""
    _act(task_id, "retry", "queued again", tenant, as_json)


@app.command("callback-key")
def callback_key(
    rotate: Annotated[bool, typer.Option("--rotate", help="Replace the key first (admin).")] = False,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Print the tenant's key for checking the signature of its task callbacks."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        answer = (agent.post if rotate else agent.get)("/v1/tasks/callback-key")
    if as_json:
        term.print_json(answer)
    else:
        term.say(answer["key"])


def _act(task_id: str, action: str, done: str, tenant: str | None, as_json: bool) -> None:
    """POST /v1/tasks/ID/ACTION and report the task it returns."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        task = agent.post(f"/v1/tasks/{client.segment(task_id, 'task id')}/{action}")
    if as_json:
        term.print_json(task)
    else:
        term.say(f"{task['id']}  {done}")


# -- output ------------------------------------------------------------------------


def _finish(term: Any, task: dict[str, Any], as_json: bool) -> None:
    """The ended task's result on stdout, or its error on stderr and exit 1."""
    import base64

    from hyac_cli.invoking import write_body

    if as_json:
        if task["status"] != TaskStatus.SUCCEEDED and not task.get("error"):
            # Every failure printed with --json carries an error object.
            task = {**task, "error": {"code": task["status"],
                                      "message": _error_text(task).removeprefix("Error: ").strip()}}
        term.print_json(task)
    elif task["status"] == TaskStatus.SUCCEEDED:
        result = task.get("result") or {}
        write_body(term, base64.b64decode(result.get("body_b64") or ""), result.get("headers") or {})
    if task["status"] != TaskStatus.SUCCEEDED:
        if not as_json:
            term.write_err(_error_text(task))
        raise typer.Exit(1)


def _error_text(task: dict[str, Any]) -> str:
    error = task.get("error")
    if task["status"] == TaskStatus.CANCELLED:
        return f"Error: task {task['id']} was cancelled\n"
    if not error:
        return f"Error: task {task['id']} ended {task['status']}\n"
    text = error.get("traceback") or (
        f"{error.get('type') or error.get('code')}: {error.get('message')}"
    )
    head = f"task {task['id']} is {task['status']} after {task['attempt']} attempt(s) " \
           f"({error.get('code')})\n"
    return head + (text if text.endswith("\n") else text + "\n")


def _describe(term: Any, task: dict[str, Any]) -> None:
    import base64

    from hyac_cli.commands.logs import format_time

    def line(label: str, value: Any, style: str | None = None) -> None:
        term.styled([(f"{label:<10}", "dim"), (str(value), style)])

    line("id", task["id"])
    line("function", f"{task['function']} v{task['version']}")
    line("status", task["status"], STATUS_STYLES.get(task["status"]))
    line("attempt", f"{task['attempt']} of {task['max_attempts']}")
    line("created", format_time(task["created_at"]))
    if task["status"] in WAITING and task["run_at"] > time.time():
        line("next run", format_time(task["run_at"]))
    if task.get("started_at"):
        line("started", format_time(task["started_at"]))
    if task.get("finished_at"):
        line("finished", format_time(task["finished_at"]))
        line("took", _duration(task))
    if task.get("progress") is not None:
        line("progress", f"{_progress(task)} {task.get('progress_message') or ''}".rstrip())
    if task.get("worker"):
        line("worker", task["worker"])
    if task.get("request_id"):
        line("request", task["request_id"])
    if task.get("trigger"):
        from hyac_common.triggers import describe_trigger

        line("trigger", describe_trigger(task["trigger"]))
    if task.get("callback_url"):
        line("callback", f"{task['callback_url']} ({task.get('callback_status') or '-'}, "
                         f"{task.get('callback_attempts', 0)} attempt(s))")
    result = task.get("result")
    if result and task["status"] == TaskStatus.SUCCEEDED:
        body = base64.b64decode(result.get("body_b64") or "")
        text = body.decode("utf-8", "replace")
        line("result", f"HTTP {result.get('status', 200)}")
        term.write(text if not text or text.endswith("\n") else text + "\n")
    error = task.get("error")
    if error:
        line("error", f"{error.get('code')}: {error.get('message')}", "red")
        if error.get("traceback"):
            term.write(error["traceback"] if error["traceback"].endswith("\n")
                       else error["traceback"] + "\n")


def _progress(task: dict[str, Any]) -> str:
    value = task.get("progress")
    return "-" if value is None else f"{value * 100:.0f}%"


def _age(ts: float) -> str:
    seconds = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _duration(task: dict[str, Any]) -> str:
    start, end = task.get("started_at"), task.get("finished_at")
    if not start or not end:
        return "-"
    seconds = end - start
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


class _ProgressView:
    """A rich progress bar on a terminal; plain status lines on stderr otherwise."""

    def __init__(self, term: Any) -> None:
        self.term = term
        self._progress: Any = None
        self._bar: Any = None
        self._last: tuple[Any, ...] | None = None

    def __enter__(self) -> "_ProgressView":
        if self.term.stderr_is_tty:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._progress = Progress(
                TextColumn("[bold]{task.fields[status]:<9}"), BarColumn(), TaskProgressColumn(),
                TextColumn("{task.description}"), console=self.term.err, transient=False,
            )
            self._progress.start()
            self._bar = self._progress.add_task("", total=1.0, status="…")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, task: dict[str, Any]) -> None:
        status = task.get("status", "?")
        fraction = task.get("progress")
        message = task.get("progress_message") or ""
        label = f"attempt {task.get('attempt', 0)}/{task.get('max_attempts', 1)}"
        if self._progress is not None:
            self._progress.update(
                self._bar, completed=fraction or 0.0, status=status,
                description=f"{message}  [dim]{label}[/dim]" if message else f"[dim]{label}[/dim]",
            )
            return
        key = (status, task.get("attempt"), fraction, message)
        if key == self._last:
            return
        self._last = key
        shown = "" if fraction is None else f" {fraction * 100:.0f}%"
        self.term.note(f"{status}{shown} {message} ({label})".replace("  ", " "), style=None)
