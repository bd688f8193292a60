"""What one worker's output may put in the log.

A log frame is the worker's word, and the worker runs the tenant's code: it may name any
request id and put anything in any field. So a frame's line is charged to the request
that is really in flight on that worker (a frame naming any other id is dropped and
counted), its fields are cut to what the log holds (a known level, a known stream, a
message within what the request has left), and every stored line costs its message plus
a fixed overhead, so a flood of empty lines is held to the budget too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from hyac_agent.store import LOG_LINE_OVERHEAD

#: log bytes one request may send; lines sent outside any request (import-time output,
#: threads of the function's own) share one such budget for the worker's lifetime
MAX_LOG_BYTES_PER_REQUEST = 1024 * 1024
#: bytes of a worker's raw stdout/stderr (not framed: written to fds 1 and 2) in total
MAX_RAW_OUTPUT_BYTES = 4 * 1024 * 1024
LINE_OVERHEAD = LOG_LINE_OVERHEAD
#: the longest message one line keeps (the rest is cut and marked)
MAX_LINE = 16 * 1024
LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
STREAMS = frozenset({"stdout", "stderr", "logger"})
TRUNCATED = " …[truncated]"


@dataclass(frozen=True)
class LogLine:
    request_id: str | None
    stream: str
    level: str | None
    message: str


class LogBudget:
    """Charges one worker's log frames and raw output; ``notice`` gets a system line
    when a budget runs out or the worker first names a request it is not serving."""

    def __init__(self, notice: Callable[[str], None]) -> None:
        self._notice = notice
        self._used: dict[str | None, int] = {}
        self._raw = 0
        #: frames dropped because they named no request in flight on this worker
        self.foreign_frames = 0

    def frame(self, frame: Mapping[str, Any], in_flight: Collection[str]) -> LogLine | None:
        """The line ``frame`` may store, or None when it is dropped."""
        request_id = frame.get("id")
        if request_id is not None and not (isinstance(request_id, str) and request_id in in_flight):
            self.foreign_frames += 1
            if self.foreign_frames == 1:
                self._notice(
                    "log frames naming a request this worker is not serving are dropped"
                )
            return None
        message = self._charge(request_id, _text(frame.get("message")), in_flight)
        if message is None:
            return None
        level = frame.get("level")
        stream = frame.get("stream")
        return LogLine(
            request_id=request_id,
            stream=stream if isinstance(stream, str) and stream in STREAMS else "stdout",
            level=level.upper() if isinstance(level, str) and level.upper() in LEVELS else None,
            message=message,
        )

    def raw(self, line: bytes, stream: str) -> str | None:
        """A line the worker wrote straight to fd 1 or 2, or None once over budget."""
        cost = len(line) + LINE_OVERHEAD
        before, self._raw = self._raw, self._raw + cost
        if self._raw <= MAX_RAW_OUTPUT_BYTES:
            return _cut(line.decode("utf-8", "replace").rstrip("\n"))
        if before <= MAX_RAW_OUTPUT_BYTES:
            self._notice(
                f"output_too_large: raw {stream} of the worker exceeded "
                f"{MAX_RAW_OUTPUT_BYTES} bytes; the rest is dropped"
            )
        return None

    def _charge(self, request_id: str | None, message: str, in_flight: Collection[str]) -> str | None:
        if len(self._used) > len(in_flight) + 64:  # forget requests that have ended
            self._used = {k: v for k, v in self._used.items() if k is None or k in in_flight}
        used = self._used.get(request_id, 0)
        if used > MAX_LOG_BYTES_PER_REQUEST:
            return None
        message = _cut(message)
        left = MAX_LOG_BYTES_PER_REQUEST - used - LINE_OVERHEAD
        size = len(message.encode("utf-8", "replace"))
        if size <= left:
            self._used[request_id] = used + size + LINE_OVERHEAD
            return message
        self._used[request_id] = MAX_LOG_BYTES_PER_REQUEST + 1
        whose = f"request {request_id}" if request_id else "the worker outside any request"
        self._notice(
            f"output_too_large: log output of {whose} exceeded "
            f"{MAX_LOG_BYTES_PER_REQUEST} bytes; the rest is dropped"
        )
        if left <= 0:
            return None
        return message.encode("utf-8", "replace")[:left].decode("utf-8", "ignore") + TRUNCATED


def _text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)[:MAX_LINE]


def _cut(message: str) -> str:
    return message if len(message) <= MAX_LINE else message[:MAX_LINE] + TRUNCATED
