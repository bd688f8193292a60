"""The worker's side of the channel to the agent: framing, host calls, captured output.

See docs/protocol.md. Frames are a 4-byte big-endian length and that many bytes of UTF-8
JSON. The event loop reads the channel (``FrameBuffer`` splits what arrives into
frames); writes come from the event loop and straight from thread-pool handlers, so they
are serialised by one lock and each is one blocking ``sendall`` of a whole frame.
"""

from __future__ import annotations

# A worker's start imports what serves the first invocation and no more (see
# _hyac_worker.py): the C modules under socket and threading, and hyac_context's JSON
# codec, not the socket and json packages, whose enum and re make most of an
# interpreter's start. traceback is imported by the first failure or once the first
# invocation is answered (_hyac_errors.py).
import _socket
import _thread
import contextvars
import io
import itertools
import os
import struct

from hyac_context import _host_call_error, _json_dumps, _json_loads

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (see bootstrap.py)
    import socket
    from collections.abc import Callable
    from concurrent.futures import Future
    from typing import Any, NoReturn

#: the worker protocol this bootstrap speaks: hyac_common/protocol.py's, held to it by a test
PROTOCOL_VERSION = "1.0"
#: the codes a result's error may carry (hyac_common/protocol.py); none: the function raised
OUTPUT_TOO_LARGE = "output_too_large"
OUT_OF_MEMORY = "out_of_memory"
TIMED_OUT = "timeout"  # the runtime itself stopped the function at its deadline
MAX_FRAME = 64 * 1024 * 1024
MAX_LOG_LINE = 256 * 1024
_HEADER = struct.Struct(">I")
_DONTWAIT = getattr(_socket, "MSG_DONTWAIT", 0)
RECV_SIZE = 256 * 1024

current_request: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hyac_request_id", default=None
)
"""The id of the request the running code serves; None outside any request."""


class ProtocolError(Exception):
    """The peer broke the framing or sent a frame that makes no sense."""


class FrameTooLarge(ValueError):
    """A frame we were about to send is larger than MAX_FRAME."""


def encode_frame(message: dict[str, Any]) -> bytes:
    """Serialise one message into a frame; raises FrameTooLarge past the limit."""
    try:
        data = _json_dumps(message, ensure_ascii=False, separators=(",", ":"),
                           allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate in some text (a str made from "\ud800" or by surrogateescape)
        # has no UTF-8 form: escaped instead, as JSON allows. Without this the frame
        # was never sent and its request waited out its timeout.
        data = _json_dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii")
    if len(data) > MAX_FRAME:
        raise FrameTooLarge(f"message of {len(data)} bytes exceeds the 64 MiB frame limit")
    return _HEADER.pack(len(data)) + data


def decode_payload(payload: bytes | bytearray) -> dict[str, Any]:
    """Parse one frame's payload; ProtocolError unless it is a JSON object with a type."""
    try:
        message = _json_loads(payload.decode("utf-8"))
    except ValueError as exc:
        raise ProtocolError(f"frame is not UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("frame is not a JSON object with a string 'type'")
    return message


class FrameBuffer:
    """Splits the bytes read from the channel, in whatever pieces they come, into frames."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.wanted = RECV_SIZE
        """How much to ask the next read for: enough for the frame being received."""

    def __bool__(self) -> bool:
        """True while part of a frame is held (so an end of stream now is an error)."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add ``data``; return the frames it completes (ProtocolError if malformed)."""
        buf: bytes | bytearray = self._buf
        if buf:
            buf += data  # type: ignore[operator]
        else:
            buf = data
        messages = []
        pos, size = 0, len(buf)
        self.wanted = RECV_SIZE
        while size - pos >= 4:
            (length,) = _HEADER.unpack_from(buf, pos)
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes exceeds the 64 MiB limit")
            end = pos + 4 + length
            if end > size:
                self.wanted = min(max(RECV_SIZE, end - size), 4 * 1024 * 1024)
                break
            messages.append(decode_payload(buf[pos + 4 : end]))
            pos = end
        if pos == size:
            self._buf = bytearray()
        elif isinstance(buf, bytearray):
            del buf[:pos]  # cheap at the front of a bytearray
            self._buf = buf
        else:
            self._buf = bytearray(buf[pos:])
        return messages


def _host_call_future() -> Future[Any]:
    """A new host call future. ``concurrent.futures`` (with the ``logging`` it imports,
    about 3 ms of a worker's start) is loaded by the first host call, not at every start."""
    global HostCallFuture
    if HostCallFuture is None:
        from concurrent.futures import Future

        class _HostCallFuture(Future):  # a Future[Any]: typing is not imported at run time
            """A host call's answer.

            The event loop reads the channel, so a blocking wait on the loop's own thread
            (an ``async def`` function calling ``kv.get`` instead of ``await kv.aget``)
            would never see the reply: there ``result()`` reads the channel itself until
            the reply is in.
            """

            _pump: Callable[[Future[Any]], None] | None = None

            def result(self, timeout: float | None = None) -> Any:
                if self._pump is not None and not self.done():
                    self._pump(self)
                return super().result(timeout)

        HostCallFuture = _HostCallFuture
    return HostCallFuture()


HostCallFuture: Any = None  # the class, once the first host call has made it


class Channel:
    """The channel socket: sends frames, receives them, and tracks pending host calls."""

    def __init__(self, sock: socket.socket | _socket.socket, on_lost: Callable[[], None]) -> None:
        self._sock = sock
        self._on_lost = on_lost
        self._send_lock = _thread.allocate_lock()
        self._recv_buf = bytearray(RECV_SIZE)
        self._recv_view = memoryview(self._recv_buf)
        self._calls_lock = _thread.allocate_lock()
        self.reader_thread: int | None = None
        """Ident of the thread that reads the channel (the event loop's), once it does."""
        self.pump: Callable[[Future[Any]], None] | None = None
        """Reads the channel until a future is done; used by waits on ``reader_thread``."""
        self._call_ids = itertools.count(1)
        self._pending: dict[int, Future[Any]] = {}
        self.formatter: Callable[[BaseException], str] = _plain_format

    # -- receiving -----------------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv_nowait(self, size: int, wait: bool = False) -> bytes:
        """What has arrived, up to ``size`` bytes (b"" at the end of the stream).

        Raises BlockingIOError when nothing has, unless ``wait``. The socket itself stays blocking, so
        ``send`` from any thread remains a plain ``sendall``. Reads go through one
        reused buffer: a fresh 256 KiB bytes object per read costs more than the read.
        """
        flags = 0 if wait else _DONTWAIT
        if size > len(self._recv_buf):  # the rest of a large frame
            return self._sock.recv(size, flags)
        n = self._sock.recv_into(self._recv_buf, 0, flags)
        return self._recv_view[:n].tobytes()

    def read_frame(self) -> dict[str, Any] | None:
        """Read one frame; None on a clean end of stream, ProtocolError if malformed."""
        header = self._read_exactly(_HEADER.size, at_boundary=True)
        if header is None:
            return None
        (length,) = _HEADER.unpack(header)
        if length > MAX_FRAME:
            raise ProtocolError(f"frame of {length} bytes exceeds the 64 MiB limit")
        return decode_payload(self._read_exactly(length, at_boundary=False) or b"")

    def _read_exactly(self, size: int, at_boundary: bool) -> bytes | None:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = self._sock.recv_into(view[got:])
            if n == 0:
                if at_boundary and got == 0:
                    return None
                raise ProtocolError("channel closed in the middle of a frame")
            got += n
        return bytes(buf)

    def resolve(self, message: dict[str, Any]) -> None:
        """Hand a ``hostcall_result`` to the caller waiting for it."""
        call, ok = message.get("call"), message.get("ok")
        if not isinstance(call, int) or not isinstance(ok, bool):
            raise ProtocolError("hostcall_result needs an int 'call' and a bool 'ok'")
        with self._calls_lock:
            future = self._pending.pop(call, None)
        if future is None:
            return  # the caller is gone; nothing waits for this answer
        if ok:
            future.set_result(message.get("value"))
        else:
            future.set_exception(_host_call_error(message.get("error")))

    # -- sending -------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Send one frame; the whole process exits if the agent has gone away."""
        data = encode_frame(message)
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError:
                self._on_lost()
                raise

    def call(self, request_id: str, op: str, args: dict[str, Any]) -> Future[Any]:
        """Start host call ``op``; the future resolves when the agent answers."""
        future = _host_call_future()
        if self.reader_thread is not None and _thread.get_ident() == self.reader_thread:
            future._pump = self.pump  # type: ignore[attr-defined]
        with self._calls_lock:
            call = next(self._call_ids)
            self._pending[call] = future
        message = {"type": "hostcall", "id": request_id, "call": call, "op": op, "args": args}
        try:
            self.send(message)
        except FrameTooLarge as exc:
            with self._calls_lock:
                self._pending.pop(call, None)
            future.set_exception(ValueError(f"{op} arguments too large: {exc}"))
        return future

    def format_exception(self, exc: BaseException) -> str:
        """Format ``exc`` for a log line, with ``formatter`` (set by the worker)."""
        return self.formatter(exc)

    def log(
        self, request_id: str | None, stream: str, message: str, level: str | None = None
    ) -> None:
        """Send one log line, cut at MAX_LOG_LINE characters."""
        if len(message) > MAX_LOG_LINE:
            message = message[:MAX_LOG_LINE] + " ...[truncated]"
        frame: dict[str, Any] = {"type": "log", "id": request_id, "stream": stream}
        if level is not None:
            frame["level"] = level
        frame["message"] = message
        self.send(frame)


def _plain_format(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class LogStream(io.TextIOBase):
    """A text stream replacing sys.stdout/sys.stderr: each line becomes a ``log`` frame.

    Partial lines are kept per request id until a newline arrives or the request ends.
    """

    def __init__(self, channel: Channel, name: str) -> None:
        super().__init__()
        self._channel = channel
        self._name = name
        # Re-entrant: a finaliser or signal handler may print while a write is under way.
        self._lock = _thread.RLock()
        self._partial: dict[str | None, str] = {}

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"<hyac {self._name}>"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    @property
    def line_buffering(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        request_id = current_request.get()
        with self._lock:
            data = self._partial.pop(request_id, "") + text
            *lines, rest = data.split("\n")
            if rest:
                self._partial[request_id] = rest
            for line in lines:
                self._channel.log(request_id, self._name, line)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: lines are sent as they complete (see ``end_request``)."""

    def end_request(self, request_id: str | None) -> None:
        """Send the unfinished last line of ``request_id``, if any."""
        if request_id not in self._partial:  # the usual case; only its own code adds it
            return
        with self._lock:
            rest = self._partial.pop(request_id, "")
            if rest:
                self._channel.log(request_id, self._name, rest)


def die(code: int, reason: str | None = None) -> NoReturn:
    """Exit the worker at once, from any thread, telling fd 2 why."""
    if reason:
        try:
            os.write(2, f"hyac worker: {reason}\n".encode("utf-8", "replace"))
        except OSError:
            pass
    os._exit(code)
