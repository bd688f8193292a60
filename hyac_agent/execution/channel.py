"""Framed JSON messages over a stream: a 4-byte big-endian length, then UTF-8 JSON.

The frames themselves are typed in hyac_common/protocol.py."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Mapping
from typing import Any, cast

from hyac_common.protocol import MAX_FRAME, WorkerFrame

_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer broke the framing or sent something that is not a JSON object."""


def encode_frame(message: Mapping[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return _HEADER.pack(len(payload)) + payload


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
    try:
        message = json.loads(payload)
    except ValueError:
        raise ProtocolError("frame is not valid JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("frame is not a JSON object with a 'type'")
    return cast(WorkerFrame, message)
