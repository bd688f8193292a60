"""Hyac's Python worker: loads one function and serves its invocations over a socket.

Started inside the sandbox as ``python -I -B RUNTIME_DIR/bootstrap.py``, which imports
this module (from the bytecode the agent compiled) and calls ``main``; the agent
speaks the framed protocol of docs/protocol.md on the inherited file descriptor named by
``HYAC_CHANNEL_FD`` (default 3), or on the unix socket at ``HYAC_CHANNEL_PATH`` when that
is set (containers). Standard library only, so it runs on every supported interpreter
(3.9 to 3.13).

Exit codes: 0 after ``shutdown`` or when the channel closes, 1 after ``init_error``,
2 when the agent breaks the protocol.
"""

from __future__ import annotations

import _queue
import _socket
import contextvars
import os
import sys
import threading
import time
import types

# A worker imports at start what serves its first invocation, and no more: each
# import here is paid by every sandbox that boots, before the function's first answer.
# asyncio, inspect and typing are not imported: together they were most of a cold
# start's interpreter time, and a ``def`` handler's worker serves without them (an
# ``async def`` handler's worker imports asyncio when it starts serving). Nor are
# socket, json, base64, queue and traceback, which bring enum and re (8-10 ms more):
# their C modules serve instead, and traceback is imported once the first invocation is
# answered (_hyac_errors.py). threading is: it must first be imported on the main thread.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from concurrent.futures import Future
    from typing import Any, NoReturn

# The runtime dir may be mounted anywhere (read-only): locate the companion modules from
# this file (bootstrap.py put it on sys.path already; an importer may not have).
RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
if RUNTIME_DIR not in sys.path:
    sys.path.insert(0, RUNTIME_DIR)

import hyac_context  # noqa: E402
from _hyac_errors import MAIN_MODULE, UserTracebacks  # noqa: E402
from _hyac_protocol import (  # noqa: E402
    OUT_OF_MEMORY,
    OUTPUT_TOO_LARGE,
    PROTOCOL_VERSION,
    Channel,
    FrameBuffer,
    FrameTooLarge,
    LogStream,
    ProtocolError,
    current_request,
    die,
)

DEFAULT_CHANNEL_FD = 3  # the agent may name another one in HYAC_CHANNEL_FD
EXIT_OK, EXIT_INIT_ERROR, EXIT_PROTOCOL_ERROR = 0, 1, 2
DEFAULT_WORKER_THREADS = 16
#: a thread's stack where private memory is capped by RLIMIT_DATA (hosts without cgroups):
#: the cap counts a stack's whole reservation, touched or not, and glibc reserves 8 MiB
#: (ulimit -s), so 16 threads would take a 128 MiB quota by themselves
CAPPED_THREAD_STACK = 2 * 1024 * 1024


class MalformedRequest(ProtocolError):
    """An ``invoke`` frame with a usable id but a request that cannot be read: that one
    request is answered with an error; the worker goes on serving."""

    def __init__(self, request_id: str, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id


class Invocation:
    """One parsed ``invoke`` frame."""

    def __init__(self, message: dict[str, Any], default_timeout: float) -> None:
        request_id = message.get("id")
        request = message.get("request")
        if not isinstance(request_id, str) or not request_id:
            raise ProtocolError("invoke needs a non-empty string 'id'")
        if not isinstance(request, dict):
            raise MalformedRequest(request_id, f"invoke {request_id}: 'request' must be an object")
        try:
            body = hyac_context._b64decode_strict(request.get("body_b64") or "")
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
            raise MalformedRequest(request_id, f"invoke {request_id}: malformed request: {exc}") from None
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
        # Built once: every invocation's FunctionInfo differs only in its request id.
        self._info: dict[str, Any] = {
            "tenant": str(function.get("tenant", "default")),
            "name": str(function.get("name", "")),
            "version": int(function.get("version") or 0),
            "sha256": str(function.get("sha256", "")),
            "runtime": str(function.get("runtime", "")),
        }
        self._handler: Callable[..., Any] = _missing_handler
        self._is_async = False
        self._tasks: set[asyncio.Task[None]] = set()  # strong references to async invocations
        # Invocations started and not yet answered, counted from the loop and pool threads.
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._stopping = False
        self._frames = FrameBuffer()  # what the reading thread has read of the channel
        self._deferred: list[dict[str, Any]] = []  # frames read while it waited on a host call
        #: the event loop: the reader of an ``async def`` handler's worker; for a ``def``
        #: handler, started on a thread of its own if it ever returns a coroutine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._answered = False  # whether an invocation has been answered yet

    @property
    def code_dir(self) -> str:
        return self._code_dir

    # -- loading -------------------------------------------------------------------

    def load(self) -> bool:
        """Load the entry file once; answer ``ready`` or ``init_error``."""
        try:
            self._handler = self._load_entry()
        except BaseException as exc:  # anything the user's module code raises
            error = self._errors.describe(exc)
            self.end_output(None)
            self._channel.send({"type": "init_error", "protocol": PROTOCOL_VERSION, "error": error})
            return False
        handler = self._handler
        self._is_async = _is_async_handler(handler)
        self.end_output(None)
        version = sys.version.split()[0]  # what platform.python_version() says
        self._channel.send({"type": "ready", "protocol": PROTOCOL_VERSION, "pid": os.getpid(),
                            "runtime_version": version})
        return True

    def _load_entry(self) -> Callable[..., Any]:
        os.environ.update(self._env)
        os.chdir(self._code_dir)
        path = os.path.join(self._code_dir, self._entry)
        with open(path, "rb") as f:
            source = f.read()
        # The entry is compiled under its relative name: tracebacks and linecache show
        # "functions/hello.py", and nothing is prepended, so line numbers stay true.
        self._errors.entry_source = (source, path)
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

    def serve(self) -> NoReturn:
        """Serve until ``shutdown`` (exit 0 once every invocation is answered); the end
        of the channel and protocol errors exit directly.

        The main thread reads the channel. For a ``def`` handler it blocks in the read
        and hands each invocation to the pool, whose thread sends the result: one thread
        hop per invocation, and no event loop at all. For an ``async def`` handler an
        event loop reads it, and each invocation starts as a task where its frame is
        parsed.
        """
        self._pool = SyncPool(_worker_threads(), self._invoke_sync, self._refuse)
        self._channel.reader_thread = threading.get_ident()
        self._channel.pump = self._pump_until
        if not self._is_async:
            while True:
                self._dispatch(self._receive(wait=True))
        import asyncio

        asyncio.run(self._serve_on_loop())
        die(EXIT_PROTOCOL_ERROR, "the event loop stopped")  # it does not: die() ends the worker

    async def _serve_on_loop(self) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._channel.fileno(), self._on_readable)
        await self._loop.create_future()  # never done: the worker ends with die()

    def _on_readable(self) -> None:
        """The channel has data: dispatch every frame it completes."""
        self._dispatch(self._receive(wait=False))

    def _receive(self, wait: bool) -> list[dict[str, Any]]:
        """The frames completed by what the channel holds now (once something has come,
        if ``wait``); the end of the channel or a broken frame ends the worker."""
        try:
            data = self._channel.recv_nowait(self._frames.wanted, wait=wait)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as exc:
            die(EXIT_OK, f"channel read failed: {exc}")
        if not data:
            if self._frames:
                die(EXIT_PROTOCOL_ERROR, "protocol error: channel closed in the middle of a frame")
            die(EXIT_OK)
        try:
            return self._frames.feed(data)
        except ProtocolError as exc:
            die(EXIT_PROTOCOL_ERROR, f"protocol error: {exc}")

    def _pump_until(self, future: Future[Any]) -> None:
        """The reading thread waits for a host call's reply (an ``async def`` function's
        blocking call, or a signal handler's): read until it is in. On the loop, other
        frames are kept for the loop's next turn; without one they are dispatched."""
        while not future.done():
            for message in self._receive(wait=True):
                if message["type"] == "hostcall_result" or not self._is_async:
                    # Without a loop, an invocation only goes to the pool: no reason to wait.
                    self._dispatch([message])
                else:
                    self._deferred.append(message)
        if self._deferred and self._loop is not None:
            # Ahead of anything read later: they were received first.
            self._loop.call_soon(self._dispatch_deferred)

    def _dispatch_deferred(self) -> None:
        messages, self._deferred = self._deferred, []
        self._dispatch(messages)

    def _dispatch(self, messages: list[dict[str, Any]]) -> None:
        try:
            for message in messages:
                kind = message["type"]
                if kind == "invoke":
                    try:
                        job = Invocation(message, self._timeout)
                    except MalformedRequest as exc:
                        self._answer(exc.request_id, self._failure(exc.request_id, exc))
                        continue
                    self._start(job)
                elif kind == "hostcall_result":
                    self._channel.resolve(message)  # wakes the caller's thread or task
                elif kind == "shutdown":
                    self._begin_shutdown()
                else:
                    raise ProtocolError(f"unexpected frame type {kind!r}")
        except ProtocolError as exc:
            die(EXIT_PROTOCOL_ERROR, f"protocol error: {exc}")

    def _start(self, job: Invocation) -> None:
        with self._in_flight_lock:
            self._in_flight += 1
        if self._is_async:
            # The task runs in its own copy of the context, so this tags only its output.
            task = _start_task(self._loop, self._invoke_async(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._pool.submit(job)

    def _done(self) -> None:
        """One invocation was answered (from the loop or a pool thread)."""
        with self._in_flight_lock:
            self._in_flight -= 1
            last = self._stopping and not self._in_flight
        if last:
            self._finish()

    def _begin_shutdown(self) -> None:
        with self._in_flight_lock:
            self._stopping = True
            idle = not self._in_flight
        if idle:
            self._finish()

    def _finish(self) -> NoReturn:
        """Leave after ``shutdown``, the last invocation answered (from any thread)."""
        self.end_output(None)  # unfinished lines printed outside any request
        die(EXIT_OK)

    async def _invoke_async(self, job: Invocation) -> None:
        current_request.set(job.id)
        try:
            try:
                value = await self._handler(self._make_context(job))
                if _is_awaitable(value):
                    value = await value
                result = self._success(job.id, value)
            except BaseException as exc:  # whatever the function raised is its answer
                result = self._failure(job.id, exc)
            self._answer(job.id, result)
        finally:
            self._done()

    def _refuse(self, job: Invocation, exc: BaseException) -> None:
        """No thread could be started to run ``job``: it fails as out of memory."""
        try:
            error = MemoryError(f"no thread could be started to run the function ({exc})")
            self._answer(job.id, self._failure(job.id, error))
        finally:
            self._done()

    def _invoke_sync(self, job: Invocation) -> None:
        """Pool thread: run a ``def`` handler and send its result from this thread."""
        try:
            # A fresh copy of this thread's context per invocation: it tags the output
            # with job.id, and context variables the function sets do not leak.
            contextvars.copy_context().run(self._run_sync, job)
        finally:
            self._done()

    def _run_sync(self, job: Invocation) -> None:
        current_request.set(job.id)
        try:
            value = self._handler(self._make_context(job))
            if _is_awaitable(value):  # a plain callable that returned a coroutine
                import asyncio

                value = asyncio.run_coroutine_threadsafe(_wait_for(value), self._event_loop()).result()
            result = self._success(job.id, value)
        except BaseException as exc:  # whatever the function raised is its answer
            result = self._failure(job.id, exc)
        self._answer(job.id, result)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop coroutines run on: the worker's own, or one started now on a thread of
        its own (a ``def`` handler returned a coroutine), kept for the ones after."""
        with self._loop_lock:
            if self._loop is None:
                import asyncio

                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="hyac-asyncio", daemon=True).start()
                self._loop = loop
            return self._loop

    def _success(self, request_id: str, value: Any) -> dict[str, Any]:
        status, headers, body = hyac_context._to_wire_response(value)
        response = {
            "status": status,
            "headers": headers,
            "body_b64": hyac_context._b64encode(body),
        }
        return {"type": "result", "id": request_id, "ok": True, "response": response}

    def _answer(self, request_id: str, result: dict[str, Any]) -> None:
        """Send the request's last partial log lines, then its result."""
        self.end_output(request_id)
        try:
            self._channel.send(result)
        except FrameTooLarge as exc:
            too_large = ValueError(f"response too large: {exc}")
            self._channel.send(self._failure(request_id, too_large, OUTPUT_TOO_LARGE))
        if not self._answered:
            # After the first answer, not before it: what a failure needs to be described
            # is ready before a function can run out of memory with it still missing.
            self._answered = True
            try:
                self._errors.prepare()
            except Exception:  # MemoryError too: the next failure tries again
                pass

    def _failure(
        self, request_id: str, exc: BaseException, code: str | None = None
    ) -> dict[str, Any]:
        """The ``result`` of a failed invocation; ``code`` says what the worker recognised
        (a MemoryError is out of memory), none that the function raised ``exc``."""
        error = self._errors.describe(exc)
        if code is None and isinstance(exc, MemoryError):
            code = OUT_OF_MEMORY
        if code is not None:
            error["code"] = code
        return {"type": "result", "id": request_id, "ok": False, "error": error}

    def _make_context(self, job: Invocation) -> hyac_context.FunctionContext:
        info = hyac_context.FunctionInfo(request_id=job.id, **self._info)
        return hyac_context.FunctionContext(
            request=job.request,
            logger=hyac_context.Logger(self._channel, job.id),
            env=self._env,
            kv=hyac_context.KV(self._channel, job.id),
            storage=hyac_context.Storage(self._channel, job.id),
            mail=hyac_context.Mail(self._channel, job.id),
            function=info,
            deadline=job.deadline,
            task=hyac_context.Task(self._channel, job.id, *job.task) if job.task else None,
            host=self._channel,
        )

    def end_output(self, request_id: str | None) -> None:
        for stream in self._streams:
            stream.end_request(request_id)


class SyncPool:
    """The threads running ``def main`` handlers: started on demand up to ``size``, reused.

    Leaner than ThreadPoolExecutor on the hot path: a submit is one short lock and a
    SimpleQueue put, with no Future (the job sends its own result) and no Python-level
    semaphore per job.
    """

    def __init__(self, size: int, run: Callable[[Any], None],
                 refuse: Callable[[Any, BaseException], None]) -> None:
        self._size = size
        self._run = run
        #: answers a job no thread can run: the first thread could not be started
        self._refuse = refuse
        self._jobs: _queue.SimpleQueue[Any] = _queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for a job, less the jobs already promised to them

    def submit(self, job: Any) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
                spawn = False
            else:
                spawn = self._threads < self._size
                if spawn:
                    self._threads += 1
        self._jobs.put(job)
        if spawn:
            name = f"hyac-sync_{self._threads - 1}"
            try:
                threading.Thread(target=self._serve, name=name, daemon=True).start()
            except RuntimeError as exc:  # "can't start new thread": memory or processes
                # The sandbox's limits leave no room for another thread: the running
                # ones take the job when they are free. With none at all, it is refused
                # now rather than left queued until its timeout.
                with self._lock:
                    self._threads -= 1
                    orphaned = self._threads == 0
                if orphaned:
                    try:
                        stranded = self._jobs.get_nowait()
                    except _queue.Empty:
                        return
                    self._refuse(stranded, exc)

    def _serve(self) -> None:
        get, run, lock = self._jobs.get, self._run, self._lock
        while True:
            run(get())
            with lock:
                self._idle += 1


def _missing_handler(context: Any) -> Any:
    raise RuntimeError("the function is not loaded")


async def _wait_for(awaitable: Any) -> Any:
    return await awaitable


def _start_task(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[None]:
    if sys.version_info >= (3, 12):
        import asyncio

        # Run the first step now rather than on the next turn of the loop: a handler
        # that never waits is answered without another trip through the selector.
        return asyncio.Task(coro, loop=loop, eager_start=True)
    return loop.create_task(coro)


#: inspect.CO_COROUTINE: the code flag of an ``async def`` function
_CO_COROUTINE = 0x80


def _is_async_handler(handler: Any) -> bool:
    """Whether ``handler`` is an ``async def`` function (or an instance with an
    ``async def __call__``), as inspect.iscoroutinefunction says; a plain function, the
    usual handler, is told by its code flags without importing inspect."""
    if type(handler) is types.FunctionType and not hasattr(handler, "_is_coroutine_marker"):
        return bool(handler.__code__.co_flags & _CO_COROUTINE)
    import inspect

    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        type(handler).__call__
    )


def _is_awaitable(value: Any) -> bool:
    """inspect.isawaitable(value), without importing inspect for a plain value."""
    if not hasattr(type(value), "__await__") and not isinstance(value, types.GeneratorType):
        return False
    import inspect

    return inspect.isawaitable(value)


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


def open_channel() -> Channel:
    """The channel to the agent: ``HYAC_CHANNEL_PATH``'s socket, else fd ``HYAC_CHANNEL_FD``."""
    channel_path = os.environ.get("HYAC_CHANNEL_PATH", "")
    raw_fd = os.environ.get("HYAC_CHANNEL_FD", "") or str(DEFAULT_CHANNEL_FD)
    try:
        if channel_path:
            # Containers: the agent listens on a unix socket mounted into the sandbox.
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            sock.connect(channel_path)
        else:
            sock = _socket.socket(fileno=int(raw_fd))
        os.set_inheritable(sock.fileno(), False)  # programs the function runs must not reach the agent
    except (OSError, ValueError) as exc:
        where = channel_path or f"fd {raw_fd!r}"
        die(EXIT_PROTOCOL_ERROR, f"no channel socket on {where}: {exc}")
    return Channel(sock, on_lost=lambda: die(EXIT_OK, "the agent closed the channel"))


def read_init(channel: Channel) -> dict[str, Any]:
    """The first frame, which must be ``init``; the worker leaves at the end of the channel."""
    init = channel.read_frame()
    if init is None:
        die(EXIT_OK)
    if init.get("type") != "init":
        raise ProtocolError(f"expected an init frame first, got {init.get('type')!r}")
    return init


def _size_thread_stacks() -> None:
    """Under an RLIMIT_DATA cap, give threads (the pool's and the function's own) smaller
    stacks, so that the quota is the function's memory, not reserved address space."""
    try:
        import resource

        capped = resource.getrlimit(resource.RLIMIT_DATA)[0] != resource.RLIM_INFINITY
    except (ImportError, OSError, ValueError):
        return
    if capped:
        threading.stack_size(CAPPED_THREAD_STACK)


#: HYAC_RLIMITS' names (prlimit's) and the limits they set
_RLIMIT_NAMES = {"fsize": "RLIMIT_FSIZE", "core": "RLIMIT_CORE", "nofile": "RLIMIT_NOFILE"}


def _apply_rlimits() -> None:
    """Set the limits the agent names in ``HYAC_RLIMITS`` (``fsize:N,core:0,nofile:1024``)
    on this process, soft and hard alike, as ``prlimit`` would have before it started:
    first of all, so that everything the function starts inherits them. A limit that
    cannot be set ends the worker (exit 2) before it reads its function."""
    spec = os.environ.pop("HYAC_RLIMITS", "")
    if not spec:
        return
    try:
        import resource

        for item in spec.split(","):
            name, _, value = item.partition(":")
            limit = int(value)
            resource.setrlimit(getattr(resource, _RLIMIT_NAMES[name]), (limit, limit))
    except (ImportError, KeyError, ValueError, OSError) as exc:
        die(EXIT_PROTOCOL_ERROR, f"cannot set the limits HYAC_RLIMITS={spec!r}: {exc}")


def main() -> None:
    """Read ``init``, load the function, then serve until shutdown or end of channel."""
    _apply_rlimits()
    _size_thread_stacks()
    channel = open_channel()
    try:
        worker = Worker(channel, read_init(channel))
    except (ProtocolError, ValueError, TypeError, AttributeError) as exc:
        die(EXIT_PROTOCOL_ERROR, f"protocol error: {exc}")
    except OSError as exc:
        die(EXIT_OK, f"channel read failed: {exc}")
    if os.environ.get("HYAC_GUARD") == "1":
        # No sandbox (--insecure-no-sandbox): catch accidents before the user's code runs.
        import _hyac_guard

        _hyac_guard.install(worker.code_dir, RUNTIME_DIR)
    if not worker.load():
        die(EXIT_INIT_ERROR)
    worker.serve()
