"""Hyac's Python worker: loads one function and serves its invocations over a socket.

Started inside the sandbox as ``python -I -B RUNTIME_DIR/bootstrap.py``; the agent
speaks the framed protocol of docs/protocol.md on the inherited file descriptor named by
``HYAC_CHANNEL_FD`` (default 3), or on the unix socket at ``HYAC_CHANNEL_PATH`` when that
is set (containers). Standard library only, so it runs on every supported interpreter
(3.9 to 3.13).

Exit codes: 0 after ``shutdown`` or when the channel closes, 1 after ``init_error``,
2 when the agent breaks the protocol.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import functools
import inspect
import io
import linecache
import os
import platform
import socket
import sys
import threading
import time
import tokenize
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Under -I the script's directory is not on sys.path; the runtime dir may be mounted
# anywhere (read-only), so locate the companion modules from this file.
RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
if RUNTIME_DIR not in sys.path:
    sys.path.insert(0, RUNTIME_DIR)

import hyac_context  # noqa: E402
from _hyac_errors import MAIN_MODULE, UserTracebacks  # noqa: E402
from _hyac_protocol import (  # noqa: E402
    Channel,
    FrameTooLarge,
    LogStream,
    ProtocolError,
    current_request,
    die,
)

DEFAULT_CHANNEL_FD = 3  # the agent may name another one in HYAC_CHANNEL_FD
EXIT_OK, EXIT_INIT_ERROR, EXIT_PROTOCOL_ERROR = 0, 1, 2
DEFAULT_WORKER_THREADS = 16


class Invocation:
    """One parsed ``invoke`` frame."""

    def __init__(self, message: dict[str, Any], default_timeout: float) -> None:
        request_id = message.get("id")
        request = message.get("request")
        if not isinstance(request_id, str) or not request_id:
            raise ProtocolError("invoke needs a non-empty string 'id'")
        if not isinstance(request, dict):
            raise ProtocolError(f"invoke {request_id}: 'request' must be an object")
        try:
            body = base64.b64decode(request.get("body_b64") or "", validate=True)
            self.request = hyac_context.Request(
                method=str(request.get("method", "GET")),
                path=str(request.get("path", "/")),
                query={str(k): str(v) for k, v in (request.get("query") or {}).items()},
                headers=request.get("headers") or {},
                body=body,
                client_ip=str(request.get("client_ip", "")),
                id=request_id,
            )
            deadline = message.get("deadline")
            if deadline is None:
                deadline = time.time() + default_timeout
            self.deadline = float(deadline)
            task = message.get("task")
            self.task: tuple[str, int] | None = None
            if task is not None:  # present when the invocation runs a background task
                self.task = (str(task["id"]), int(task["attempt"]))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise ProtocolError(f"invoke {request_id}: malformed request: {exc}") from None
        self.id = request_id


class Worker:
    """Holds the loaded function and serves invocations until shutdown."""

    def __init__(self, channel: Channel, init: dict[str, Any]) -> None:
        function, entry = init.get("function"), init.get("entry")
        code_dir = init.get("code_dir") or os.environ.get("HYAC_CODE_DIR")
        if not isinstance(function, dict) or not isinstance(entry, str) or not entry:
            raise ProtocolError("init needs a 'function' object and an 'entry' path")
        if not isinstance(code_dir, str):
            raise ProtocolError("init needs a 'code_dir' (or HYAC_CODE_DIR)")
        self._channel = channel
        self._function = function
        self._code_dir = os.path.abspath(code_dir)
        self._entry = os.path.normpath(entry)
        self._handler_name = str(init.get("handler") or "main")
        self._env = {str(k): str(v) for k, v in (init.get("env") or {}).items()}
        self._timeout = float(init.get("timeout") or 30.0)
        self._errors = UserTracebacks(self._code_dir, self._entry, RUNTIME_DIR)
        channel.formatter = self._errors.format
        self._streams = [LogStream(channel, "stdout"), LogStream(channel, "stderr")]
        sys.stdout, sys.stderr = self._streams  # type: ignore[assignment]
        self._handler: Callable[..., Any] = _missing_handler
        self._is_async = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- loading -------------------------------------------------------------------

    def load(self) -> bool:
        """Load the entry file once; answer ``ready`` or ``init_error``."""
        try:
            self._handler = self._load_entry()
        except BaseException as exc:  # anything the user's module code raises
            error = self._errors.describe(exc)
            self.end_output(None)
            self._channel.send({"type": "init_error", "error": error})
            return False
        handler = self._handler
        # An instance with ``async def __call__`` counts as an async handler too.
        self._is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            type(handler).__call__
        )
        self.end_output(None)
        version = platform.python_version()
        self._channel.send({"type": "ready", "pid": os.getpid(), "runtime_version": version})
        return True

    def _load_entry(self) -> Callable[..., Any]:
        os.environ.update(self._env)
        os.chdir(self._code_dir)
        path = os.path.join(self._code_dir, self._entry)
        with open(path, "rb") as f:
            source = f.read()
        # The entry is compiled under its relative name: tracebacks and linecache show
        # "functions/hello.py", and nothing is prepended, so line numbers stay true.
        encoding = tokenize.detect_encoding(io.BytesIO(source).readline)[0]
        lines = source.decode(encoding, "replace").splitlines(True)
        linecache.cache[self._entry] = (len(source), None, lines, path)
        code = compile(source, self._entry, "exec", dont_inherit=True)
        module = types.ModuleType(MAIN_MODULE)
        module.__file__ = path
        for name in hyac_context.SHIM_NAMES:
            setattr(module, name, getattr(hyac_context, name))
        sys.modules[MAIN_MODULE] = module
        sys.path.insert(0, os.path.dirname(path))
        exec(code, module.__dict__)
        handler = module.__dict__.get(self._handler_name)
        if handler is None:
            raise AttributeError(f"{self._entry} has no {self._handler_name}(context) function")
        if not callable(handler):
            raise TypeError(
                f"{self._entry}: {self._handler_name} must be a function taking context, "
                f"not {type(handler).__name__}"
            )
        return handler

    # -- serving -------------------------------------------------------------------

    async def serve(self) -> int:
        """Run until ``shutdown`` (returns 0); EOF and protocol errors exit directly."""
        self._loop = asyncio.get_running_loop()
        self._finished: asyncio.Future[int] = self._loop.create_future()
        threads = _worker_threads()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hyac-sync")
        reader = threading.Thread(target=self._read_loop, name="hyac-reader", daemon=True)
        reader.start()
        return await self._finished

    def _read_loop(self) -> None:
        """Reader thread: host-call replies are resolved here, the rest goes to the loop."""
        try:
            while True:
                message = self._channel.read_frame()
                if message is None:
                    die(EXIT_OK)
                    return
                kind = message["type"]
                if kind == "hostcall_result":
                    self._channel.resolve(message)
                elif kind == "invoke":
                    job = Invocation(message, self._timeout)
                    self._loop.call_soon_threadsafe(self._start, job)
                elif kind == "shutdown":
                    self._loop.call_soon_threadsafe(self._begin_shutdown)
                else:
                    raise ProtocolError(f"unexpected frame type {kind!r}")
        except ProtocolError as exc:
            die(EXIT_PROTOCOL_ERROR, f"protocol error: {exc}")
        except OSError as exc:
            die(EXIT_OK, f"channel read failed: {exc}")

    def _start(self, job: Invocation) -> None:
        task = self._loop.create_task(self._invoke(job))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._stopping and not self._tasks and not self._finished.done():
            self._finished.set_result(EXIT_OK)

    def _begin_shutdown(self) -> None:
        self._stopping = True
        if not self._tasks and not self._finished.done():
            self._finished.set_result(EXIT_OK)

    async def _invoke(self, job: Invocation) -> None:
        # Each task runs in its own copy of the context, so this tags only its output.
        current_request.set(job.id)
        context = self._make_context(job)
        try:
            if self._is_async:
                value = await self._handler(context)
            else:
                # Copy the context so output from the pool thread is tagged with job.id.
                call = functools.partial(contextvars.copy_context().run, self._handler, context)
                value = await self._loop.run_in_executor(self._pool, call)
            if inspect.isawaitable(value):
                value = await value
            status, headers, body = hyac_context._to_wire_response(value)
            response = {
                "status": status,
                "headers": headers,
                "body_b64": base64.b64encode(body).decode("ascii"),
            }
            result = {"type": "result", "id": job.id, "ok": True, "response": response}
        except BaseException as exc:  # whatever the function raised is its answer
            result = self._failure(job.id, exc)
        self.end_output(job.id)
        try:
            self._channel.send(result)
        except FrameTooLarge as exc:
            self._channel.send(self._failure(job.id, ValueError(f"response too large: {exc}")))

    def _failure(self, request_id: str, exc: BaseException) -> dict[str, Any]:
        error = self._errors.describe(exc)
        return {"type": "result", "id": request_id, "ok": False, "error": error}

    def _make_context(self, job: Invocation) -> hyac_context.FunctionContext:
        fn = self._function
        info = hyac_context.FunctionInfo(
            tenant=str(fn.get("tenant", "default")),
            name=str(fn.get("name", "")),
            version=int(fn.get("version") or 0),
            sha256=str(fn.get("sha256", "")),
            runtime=str(fn.get("runtime", "")),
            request_id=job.id,
        )
        return hyac_context.FunctionContext(
            request=job.request,
            logger=hyac_context.Logger(self._channel, job.id),
            env=self._env,
            kv=hyac_context.KV(self._channel, job.id),
            function=info,
            deadline=job.deadline,
            task=hyac_context.Task(self._channel, job.id, *job.task) if job.task else None,
            host=self._channel,
        )

    def end_output(self, request_id: str | None) -> None:
        for stream in self._streams:
            stream.end_request(request_id)


def _missing_handler(context: Any) -> Any:
    raise RuntimeError("the function is not loaded")


def _worker_threads() -> int:
    """Size of the pool running ``def main`` handlers (HYAC_WORKER_THREADS, default 16)."""
    raw = os.environ.get("HYAC_WORKER_THREADS", "").strip()
    try:
        threads = int(raw) if raw else DEFAULT_WORKER_THREADS
    except ValueError:
        threads = 0
    if threads < 1:
        warning = f"hyac worker: ignoring HYAC_WORKER_THREADS={raw!r}, using 16\n"
        os.write(2, warning.encode("utf-8", "replace"))
        threads = DEFAULT_WORKER_THREADS
    return threads


def main() -> None:
    """Read ``init``, load the function, then serve until shutdown or end of channel."""
    channel_path = os.environ.get("HYAC_CHANNEL_PATH", "")
    raw_fd = os.environ.get("HYAC_CHANNEL_FD", "") or str(DEFAULT_CHANNEL_FD)
    try:
        if channel_path:
            # Containers: the agent listens on a unix socket mounted into the sandbox.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(channel_path)
        else:
            sock = socket.socket(fileno=int(raw_fd))
        sock.set_inheritable(False)  # programs the function runs must not reach the agent
    except (OSError, ValueError) as exc:
        where = channel_path or f"fd {raw_fd!r}"
        die(EXIT_PROTOCOL_ERROR, f"no channel socket on {where}: {exc}")
    channel = Channel(sock, on_lost=lambda: die(EXIT_OK, "the agent closed the channel"))
    try:
        init = channel.read_frame()
        if init is None:
            die(EXIT_OK)
        if init.get("type") != "init":
            raise ProtocolError(f"expected an init frame first, got {init.get('type')!r}")
        worker = Worker(channel, init)
    except (ProtocolError, ValueError, TypeError, AttributeError) as exc:
        die(EXIT_PROTOCOL_ERROR, f"protocol error: {exc}")
    except OSError as exc:
        die(EXIT_OK, f"channel read failed: {exc}")
    if not worker.load():
        die(EXIT_INIT_ERROR)
    code = asyncio.run(worker.serve())
    worker.end_output(None)  # unfinished lines printed outside any request
    die(code)


if __name__ == "__main__":
    main()
