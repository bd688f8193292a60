"""``hyac dev``: deploy the project, then redeploy what changes and stream its logs."""

import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from hyac_cli import options

DEBOUNCE_MS = 30  # how long watchfiles gathers events of one save before reporting them
WATCH_STEP_MS = 10


def dev(
    names: Annotated[
        list[str] | None,
        typer.Argument(show_default=False, help="Functions to work on (default: all of them)."),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay", show_default=False, metavar="FILE",
            help="JSON request(s) to send after each redeploy: "
                 '{"function", "method", "path", "query", "headers", "body"}.',
        ),
    ] = None,
    logs: Annotated[
        bool, typer.Option("--logs/--no-logs", help="Stream the functions' logs live.")
    ] = True,
    tenant: options.Tenant = None,
) -> None:
    """Deploy the project, then watch its files: redeploy what changed, stream its logs.

    A change that does not compile is reported (file:line) and the last good version
    keeps serving. After each redeploy of a function, its sample request is replayed:
    the `sample = {...}` of its table in hyac.toml (sent as a JSON POST body), or the
    requests of --replay FILE. Ctrl-C stops.
    """
    from hyac_cli.manifest import load_project, require_project_root
    from hyac_cli.terminal import Terminal

    term = Terminal()
    root = require_project_root()
    project = load_project(root)
    tenant_name = options.tenant_of(tenant) if tenant else project.tenant
    samples = _read_replay(replay) if replay is not None else []
    loop = DevLoop(term, root, tenant_name, names or [], samples)
    try:
        loop.run(logs=logs)
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()
    term.note("Stopped watching.", style=None)


class DevLoop:
    """One ``hyac dev`` session: an open agent client, the log follower, the watcher."""

    def __init__(
        self, term: Any, root: Path, tenant: str, names: list[str], samples: list[dict[str, Any]]
    ) -> None:
        from hyac_cli import client

        self.term = term
        self.root = root
        self.tenant = tenant
        self.names = names
        self.samples = samples
        self.agent = client.connect(tenant=tenant, timeout=120.0)
        self.functions: set[str] = set()  # the project's functions, as last read
        self.deployed: set[str] = set()  # the functions this session deployed
        self.reached = False  # whether a deploy ever got through to the agent
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._stream_agent: Any = None

    def run(self, *, logs: bool) -> None:
        import watchfiles

        self.term.styled([("Watching ", None), (str(self.root), "bold"),
                          (f" (tenant {self.tenant}, agent {self.agent.url}). ", None),
                          ("Ctrl-C to stop.", "dim")], stderr=True)
        if logs:
            self._follower = threading.Thread(target=self._follow_logs, args=(time.time(),),
                                              daemon=True, name="hyac-dev-logs")
            self._follower.start()
        self.deploy(None)
        for changes in watchfiles.watch(
            self.root, watch_filter=self._relevant, debounce=DEBOUNCE_MS, step=WATCH_STEP_MS,
            stop_event=self._stop, raise_interrupt=True, yield_on_timeout=False,
        ):
            self.on_changes({Path(path) for _, path in changes})

    def close(self) -> None:
        self._stop.set()
        for http in (self.agent, self._stream_agent):
            if http is not None:
                try:
                    http.close()
                except Exception:  # closing while the follower reads: nothing to save
                    pass

    # -- deploying ------------------------------------------------------------------

    def on_changes(self, paths: set[Path]) -> None:
        """Redeploy the functions whose files changed (all of them if hyac.toml did)."""
        from hyac_cli.manifest import FUNCTIONS_DIR, MANIFEST

        shown = sorted(_relative(p, self.root) for p in paths)
        self.term.note(f"changed: {', '.join(shown)}")
        if any(rel == MANIFEST for rel in shown):
            self.deploy(None)
            return
        touched = set()
        for rel in shown:
            parts = rel.split("/")
            if len(parts) >= 2 and parts[0] == FUNCTIONS_DIR:
                touched.add(parts[1].removesuffix(".py"))
        if touched:
            self.deploy(touched)

    def deploy(self, touched: set[str] | None) -> None:
        """Deploy ``touched`` functions (None: every selected one); errors stay inline."""
        from hyac_cli.commands.deploy import deploy_functions, report
        from hyac_cli.manifest import load_project
        from hyac_common.errors import AgentUnreachable, HyacError

        try:
            project = load_project(self.root)
            chosen = project.select(self.names)
            if touched is not None:
                gone = sorted((touched & self.deployed) - set(project.functions))
                for name in gone:
                    self.term.warn(f"{name} is no longer in the project; it stays deployed "
                                   f"(`hyac rm {name}` deletes it)")
                chosen = [spec for spec in chosen if spec.name in touched]
            self.functions = set(project.functions)
            if not chosen:
                return
            width = max(len(spec.name) for spec in chosen)
            started = time.perf_counter()
            results = deploy_functions(
                project, chosen, self.tenant, agent=self.agent,
                on_result=lambda result: report(self.term, result, width),
            )
        except AgentUnreachable:
            if not self.reached:
                raise  # nothing deployed yet: no agent to develop against
            self.term.error("the agent stopped answering; start it again with `hyac agent up`")
            return
        except HyacError as exc:
            self.term.error(exc.message)
            return
        self.reached = True
        self.deployed.update(str(result.get("name")) for result in results)
        self.term.note(f"deployed in {time.perf_counter() - started:.2f}s")
        for result in results:
            if result.get("created", True):
                spec = project.functions.get(str(result.get("name")))
                self.replay(str(result.get("name")), spec.sample if spec else None)

    # -- replaying ------------------------------------------------------------------

    def replay(self, name: str, sample: Any) -> None:
        requests = [s for s in self.samples if s.get("function", name) == name]
        if not requests and sample is not None:
            requests = [{"method": "POST", "body": sample}]
        for request in requests:
            self._send(name, request)

    def _send(self, name: str, sample: dict[str, Any]) -> None:
        import base64
        import json

        from hyac_common.errors import HyacError
        from hyac_common.wire import InvokeRequest, InvokeResult

        body = sample.get("body")
        headers = {str(k): str(v) for k, v in (sample.get("headers") or {}).items()}
        if body is None:
            raw = b""
        elif isinstance(body, str):
            raw = body.encode()
            headers.setdefault("content-type", "text/plain; charset=utf-8")
        else:
            raw = json.dumps(body).encode()
            headers.setdefault("content-type", "application/json")
        request = InvokeRequest(
            method=str(sample.get("method") or ("POST" if raw else "GET")).upper(),
            path=str(sample.get("path") or "/"),
            query={str(k): str(v) for k, v in (sample.get("query") or {}).items()},
            headers=headers,
            body_b64=base64.b64encode(raw).decode("ascii"),
        )
        try:
            answer = self.agent.post(f"/v1/functions/{name}/invoke", json=request.model_dump())
        except HyacError as exc:
            self.term.error(f"replaying {name}: {exc.message}")
            return
        result = InvokeResult.model_validate(answer)
        if result.ok:
            text = base64.b64decode(result.body_b64).decode("utf-8", "replace").strip()
            shown = text if len(text) <= 500 else text[:500] + "…"
            self.term.styled([("replay ", "dim"), (name, "bold"), (f" → {result.status} ", None),
                              (shown, None)])
        else:
            error = result.error
            self.term.styled([("replay ", "dim"), (name, "bold"), (" raised", "red")])
            if error is not None:
                self.term.write_err(error.traceback or f"{error.type}: {error.message}\n")

    # -- logs -----------------------------------------------------------------------

    def _follow_logs(self, since: float) -> None:
        from hyac_cli import client
        from hyac_cli.commands.logs import _Printer, read_events

        printer = _Printer(self.term, False)
        while not self._stop.is_set():
            try:
                self._stream_agent = client.connect(tenant=self.tenant, timeout=None)
                lines = self._stream_agent.stream_lines("/v1/logs/stream",
                                                        params={"since": since})
                for record in read_events(lines):
                    if self._stop.is_set():
                        return
                    since = max(since, float(record.get("ts", since)))
                    if record.get("function") in self.functions | self.deployed:
                        printer(record, live=True)
            except Exception as exc:  # the agent restarted, or we are closing: retry
                if self._stop.is_set():
                    return
                self.term.warn(f"log stream interrupted ({exc}); reconnecting")
                self._stop.wait(1.0)

    # -- watching -------------------------------------------------------------------

    def _relevant(self, change: Any, path: str) -> bool:
        from hyac_cli.manifest import FUNCTIONS_DIR, MANIFEST

        rel = _relative(Path(path), self.root)
        if rel == MANIFEST:
            return True
        parts = rel.split("/")
        if parts[0] != FUNCTIONS_DIR or len(parts) < 2:
            return False
        if any(p.startswith((".", "_")) or p == "__pycache__" for p in parts[1:]):
            return False
        if len(parts) == 2:  # functions/NAME.py, or a whole functions/NAME/ directory
            return parts[1].endswith(".py") or (self.root / rel).is_dir() or (
                parts[1] in self.functions)
        return not parts[-1].endswith(("~", ".swp", ".swx", ".pyc", ".tmp"))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _read_replay(path: Path) -> list[dict[str, Any]]:
    import json

    from hyac_common.errors import InvalidInput

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidInput(f"{path}: not valid JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise InvalidInput(f"{path}: expected a JSON object (or a list of them) per request")
    return items
