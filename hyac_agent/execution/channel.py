"""Framed JSON messages over a stream: a 4-byte big-endian length, then UTF-8 JSON.

The frames themselves are typed in hyac_common/protocol.py."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable, Mapping
from typing import Any, cast

from hyac_agent.store.text import LONE_SURROGATE
from hyac_common.protocol import MAX_FRAME, WorkerFrame

_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer broke the framing or sent something that is not a JSON object."""


def encode_frame(message: Mapping[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return _HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes | bytearray) -> WorkerFrame:
    try:
        message = json.loads(payload)
    except ValueError:
        raise ProtocolError("frame is not valid JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("frame is not a JSON object with a 'type'")
    if b"\\ud" in payload or b"\\uD" in payload:  # a surrogate's escape, maybe a lone one
        try:
            message = _without_lone_surrogates(message)
        except RecursionError:
            raise ProtocolError("frame is nested too deeply") from None
    return cast(WorkerFrame, message)


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` with each lone surrogate replaced by U+FFFD. JSON lets a frame escape
    one ("\\ud800"), but no UTF-8 encoder takes it: in an answer, a log line or a task's
    error it failed the response, the store write or the batch it was part of."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    return value


class FrameProtocol(asyncio.Protocol):
    """The agent's end of a worker channel: each whole frame is handed to ``on_frame``
    as soon as its last byte arrives, in the same turn of the event loop (a stream
    reader would wake a reading task, one more turn for every answer).

    ``on_end`` is told once how the channel ended: None at a clean end of stream (or a
    lost connection), a ProtocolError when the peer broke the framing; nothing more is
    read after that."""

    def __init__(self, on_frame: Callable[[WorkerFrame], None],
                 on_end: Callable[[ProtocolError | None], None]) -> None:
        self._on_frame = on_frame
        self._on_end = on_end
        self._buffer = bytearray()
        self._needed = 0  # the payload length of the frame being read (0: its header)
        self._ended = False
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        if self._ended:
            return
        buffer = self._buffer
        buffer += data
        try:
            while True:
                if not self._needed:
                    if len(buffer) < _HEADER.size:
                        return
                    (length,) = _HEADER.unpack_from(buffer)
                    if length > MAX_FRAME:
                        raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME}")
                    del buffer[:_HEADER.size]
                    self._needed = length
                    if not length:
                        raise ProtocolError("frame is not valid JSON")
                if len(buffer) < self._needed:
                    return
                if len(buffer) == self._needed:
                    payload: bytes | bytearray = bytes(buffer)
                    buffer.clear()
                else:
                    payload = buffer[:self._needed]
                    del buffer[:self._needed]
                self._needed = 0
                self._on_frame(decode_payload(payload))
                if self._ended:  # the handler closed the channel
                    return
        except ProtocolError as exc:
            self._end(exc)
            if self.transport is not None:
                self.transport.close()

    def eof_received(self) -> bool:
        self._end(ProtocolError("stream ended inside a frame") if self._buffer or self._needed
                  else None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(None)

    def _end(self, error: ProtocolError | None) -> None:
        if not self._ended:
            self._ended = True
            self._buffer.clear()
            self._on_end(error)


async def read_frame(reader: asyncio.StreamReader) -> WorkerFrame | None:
    """The next message, or None at a clean end of stream. Only its ``type`` is checked
    here: the reader checks the fields of the type it takes."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("stream ended inside a frame header") from None
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ProtocolError("stream ended inside a frame") from None
    return decode_payload(payload)
