"""Waiting for something to happen without using time as synchronisation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(what: Callable[[], Any], timeout: float = 60, interval: float = 0.05) -> Any:
    """Poll ``what`` until it returns something true and return it; fail after ``timeout``.

    The timeout is a ceiling for a stuck run, never a measurement: a slow host only waits
    longer.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"never happened within {timeout:g} s: {what}")
        time.sleep(interval)
