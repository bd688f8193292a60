"""Random identifiers (request, task) from the operating system's CSPRNG, drawn a page at
a time: ``secrets.token_hex`` makes a ``getrandom`` call per id, and each call lets go of
the GIL and waits to get it back, which under load costs more than the id itself."""

from __future__ import annotations

import os
import threading

_PAGE = 4096
_lock = threading.Lock()
_buffer = b""
_owner = 0  # the process the buffer was drawn in: a forked child draws its own


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes, as hex; never the same bytes twice."""
    global _buffer, _owner
    with _lock:
        if len(_buffer) < nbytes or _owner != os.getpid():
            _buffer, _owner = os.urandom(_PAGE), os.getpid()
        taken, _buffer = _buffer[:nbytes], _buffer[nbytes:]
    return taken.hex()
