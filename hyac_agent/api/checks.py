"""Checks on request bodies that the wire models let through.

Python's JSON parser reads ``1e999`` as infinity and integers of any size; stored, such
a value breaks every later read of the row (or the database refuses it), so the API
turns it away first. Invalid base64 would reach the worker and end it.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from pydantic import BaseModel

from hyac_common.errors import InvalidInput

# SQLite and PostgreSQL both store 64-bit signed integers.
MAX_INT = 2**63 - 1


def sane_numbers(value: Any, where: str = "") -> None:
    """Refuse non-finite floats and integers beyond 64 bits anywhere inside ``value``."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            sane_numbers(getattr(value, name), _join(where, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            sane_numbers(item, _join(where, str(key)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            sane_numbers(item, _join(where, str(index)))
    elif isinstance(value, bool):
        return
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where or 'value'}: must be a finite number")
    elif isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        raise InvalidInput(f"{where or 'value'}: out of range")


def valid_base64(text: str, where: str) -> int:
    """Refuse ``text`` unless it is strict base64; the number of bytes it holds."""
    try:
        return len(base64.b64decode(text, validate=True))  # what the worker does with it
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: not valid base64") from None


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
