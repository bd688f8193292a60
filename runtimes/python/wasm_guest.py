"""Hyac's Python worker inside WebAssembly (the ``python3.12-wasm`` runtime).

Runs on CPython built for WASI, inside wasmtime, started by ``wasm_host.py``: the same
frames as docs/protocol.md, read from stdin (fd 0) and written to stdout (fd 1), which
the host relays to and from the agent. The function is loaded and run by the very
``Worker`` of _hyac_worker.py, with the same ``hyac_context``, so a function's code and its
stubs are the same as on ``python3.12``. What differs is how it is served: WASI has no
threads and no sockets, so invocations run one at a time, a host call blocks on stdin
until its answer comes, and ``async def main`` runs on a small event loop that needs no
selector (its host calls are answered before they are awaited).

The guest sees only what the host preopens, read-only: its code at ``/code``, its
dependencies at ``/deps`` and this folder at ``/runtime``.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import sys
import time
from concurrent.futures import Future
from typing import Any

RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
if RUNTIME_DIR not in sys.path:
    sys.path.insert(0, RUNTIME_DIR)
DEPS_DIR = "/deps"
if os.path.isdir(DEPS_DIR) and DEPS_DIR not in sys.path:
    sys.path.append(DEPS_DIR)

import _hyac_protocol  # noqa: E402
import _hyac_worker  # noqa: E402
from _hyac_protocol import (  # noqa: E402
    PROTOCOL_VERSION,
    Channel,
    FrameBuffer,
    ProtocolError,
    current_request,
    decode_payload,
    die,
    encode_frame,
)

EXIT_OK, EXIT_INIT_ERROR, EXIT_PROTOCOL_ERROR = 0, 1, 2
_READ_SIZE = 256 * 1024


class StdioChannel(Channel):
    """The channel over WASI stdin/stdout; a host call waits for its answer in place."""

    def __init__(self) -> None:
        self._frames = FrameBuffer()
        self._ready: list[dict[str, Any]] = []
        #: frames read while a host call waited (invocations, shutdown), in order
        self.deferred: list[dict[str, Any]] = []
        self._pending: dict[int, Future[Any]] = {}
        self._call_ids = itertools.count(1)
        self.formatter = _hyac_protocol._plain_format

    def read_frame(self) -> dict[str, Any] | None:
        while not self._ready:
            data = os.read(0, self._frames.wanted or _READ_SIZE)
            if not data:
                if self._frames:
                    raise ProtocolError("stdin closed in the middle of a frame")
                return None
            self._ready.extend(self._frames.feed(data))
        return self._ready.pop(0)

    def send(self, message: dict[str, Any]) -> None:
        data = memoryview(encode_frame(message))
        while data:
            written = os.write(1, data)
            data = data[written:]

    def call(self, request_id: str, op: str, args: dict[str, Any]) -> Future[Any]:
        future: Future[Any] = Future()
        call = next(self._call_ids)
        self._pending[call] = future
        message = {"type": "hostcall", "id": request_id, "call": call, "op": op, "args": args}
        try:
            self.send(message)
        except ValueError as exc:  # FrameTooLarge
            self._pending.pop(call, None)
            future.set_exception(ValueError(f"{op} arguments too large: {exc}"))
            return future
        while not future.done():
            frame = self.read_frame()
            if frame is None:
                die(EXIT_OK, "the host closed stdin")
            if frame.get("type") == "hostcall_result":
                self.resolve(frame)
            else:
                self.deferred.append(frame)
        return future

    def resolve(self, message: dict[str, Any]) -> None:
        call, ok = message.get("call"), message.get("ok")
        if not isinstance(call, int) or not isinstance(ok, bool):
            raise ProtocolError("hostcall_result needs an int 'call' and a bool 'ok'")
        future = self._pending.pop(call, None)
        if future is None:
            return
        if ok:
            future.set_result(message.get("value"))
        else:
            future.set_exception(_hyac_worker.hyac_context._host_call_error(message.get("error")))


class _Sleeper:
    """The selector of a loop with nothing to select: it only waits out timers."""

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise RuntimeError("the function awaits something that can never finish here")
        if timeout > 0:
            time.sleep(timeout)
        return []

    def close(self) -> None:
        return None


class WasiLoop(asyncio.BaseEventLoop):
    """An event loop without a selector or a self-pipe (WASI has neither)."""

    def __init__(self) -> None:
        super().__init__()
        self._selector = _Sleeper()

    def _process_events(self, event_list: list[Any]) -> None:
        return None

    def _write_to_self(self) -> None:
        return None


class WasiWorker(_hyac_worker.Worker):
    """_hyac_worker.Worker served one invocation at a time from stdin."""

    def serve_stdin(self) -> int:
        channel = self._channel
        assert isinstance(channel, StdioChannel)
        self._loop = WasiLoop()
        asyncio.set_event_loop(self._loop)
        while True:
            message = channel.deferred.pop(0) if channel.deferred else channel.read_frame()
            if message is None:
                return EXIT_OK
            kind = message.get("type")
            if kind == "invoke":
                try:
                    job = _hyac_worker.Invocation(message, self._timeout)
                except _hyac_worker.MalformedRequest as exc:
                    self._answer(exc.request_id, self._failure(exc.request_id, exc))
                    continue
                self._run_one(job)
            elif kind == "hostcall_result":
                channel.resolve(message)
            elif kind == "shutdown":
                return EXIT_OK
            else:
                raise ProtocolError(f"unexpected frame type {kind!r}")

    def _run_one(self, job: _hyac_worker.Invocation) -> None:
        token = current_request.set(job.id)
        try:
            try:
                value = self._handler(self._make_context(job))
                if inspect.isawaitable(value):
                    value = self._loop.run_until_complete(_hyac_worker._wait_for(value))
                result = self._success(job.id, value)
            except BaseException as exc:  # whatever the function raised is its answer
                if isinstance(exc, SystemExit):
                    exc = RuntimeError(f"the function called exit({exc.code!r})")
                result = self._failure(job.id, exc)
            self._answer(job.id, result)
        finally:
            current_request.reset(token)


def main() -> None:
    channel = StdioChannel()
    try:
        worker = WasiWorker(channel, _hyac_worker.read_init(channel))
    except (ProtocolError, ValueError, TypeError, AttributeError) as exc:
        die(EXIT_PROTOCOL_ERROR, f"protocol error: {exc}")
    if not worker.load():
        die(EXIT_INIT_ERROR)
    try:
        code = worker.serve_stdin()
    except ProtocolError as exc:
        die(EXIT_PROTOCOL_ERROR, f"protocol error: {exc}")
    worker.end_output(None)
    die(code)


__all__ = ["PROTOCOL_VERSION", "StdioChannel", "WasiWorker", "decode_payload", "main"]

if __name__ == "__main__":
    main()
