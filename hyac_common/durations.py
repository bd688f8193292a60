"""Durations ("30", "10m", "1h30m") and sizes ("256Mi", "1G") as written in hyac.toml."""

from __future__ import annotations

import re

from hyac_common.errors import InvalidInput

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?|[kmgt]i?|B)?[Bb]?$")
_SIZE_UNITS = {
    "": 1, "B": 1,
    "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
}


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds from a number or a string such as "90", "10m", "1h30m", "500ms"."""
    if isinstance(value, bool):
        raise InvalidInput(f"invalid {what}: {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise InvalidInput(f"invalid {what}: {value!r} must be positive")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return parse_duration(float(text), what)
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos == len(text) and total > 0:
            return total
    raise InvalidInput(f"invalid {what}: {value!r} (use seconds or a string like '30s', '10m', '1h')")


def parse_size(value: object, what: str = "size") -> int:
    """Bytes from a number or a string such as "256Mi", "1G", "512k"."""
    if isinstance(value, bool):
        raise InvalidInput(f"invalid {what}: {value!r}")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        match = _SIZE_RE.match(value.strip())
        if match:
            unit = match.group(2) or ""
            unit = unit[0].upper() + unit[1:] if unit and unit != "B" else unit
            if unit in _SIZE_UNITS:
                size = int(float(match.group(1)) * _SIZE_UNITS[unit])
                if size > 0:
                    return size
    raise InvalidInput(f"invalid {what}: {value!r} (use bytes or a string like '256Mi', '1Gi')")
