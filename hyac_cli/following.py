"""Following a server-sent event stream of the agent across its restarts.

``hyac logs -f`` and ``hyac tasks watch`` read a stream that a restarting agent ends
(or that breaks when one is killed). ``Follower.events`` reconnects with backoff, lets
the caller reopen the stream from its own cursor (the last log line's time, the task's
id), and says once per reconnection on stderr that it reconnected. It gives up when
the first connection fails, or after the agent has been away for ``RECONNECT_FOR``
seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from hyac_common import errors

if TYPE_CHECKING:
    from hyac_cli.client import AgentClient
    from hyac_cli.terminal import Terminal

#: how long the agent may stay away before a follower gives up, in seconds
RECONNECT_FOR = 120.0
FIRST_DELAY = 0.2
MAX_DELAY = 5.0


class Follower:
    """Reopens one stream until the caller stops reading it."""

    def __init__(self, term: Terminal, tenant: str | None, closed_message: str) -> None:
        self.term = term
        self.tenant = tenant
        #: the error when the agent stays away (or keeps closing the stream)
        self.closed_message = closed_message
        self._away_since: float | None = None
        self._delay = FIRST_DELAY
        self._broken = False
        self._connected = False

    def events(self, open_lines: Callable[[AgentClient], Iterable[str]]
               ) -> Iterator[Any]:
        """Decoded events of the stream ``open_lines(agent)`` opens, reopened after
        every break; ``open_lines`` is called again each time, so it resumes from the
        caller's cursor as it is then."""
        from hyac_cli import client

        failure: errors.HyacError = errors.HyacError(self.closed_message)
        while True:
            try:
                with client.connect(tenant=self.tenant, timeout=None) as agent:
                    yield from read_events(self._watched(open_lines(agent), agent.url))
                failure = errors.HyacError(self.closed_message)
            except errors.AgentUnreachable as exc:
                failure = exc
            if not self._connected:
                raise failure  # never there: nothing to wait for
            now = time.monotonic()
            if self._away_since is None:
                self._away_since = now
            if now - self._away_since >= RECONNECT_FOR:
                raise failure
            self._broken = True
            time.sleep(self._delay)
            self._delay = min(self._delay * 2, MAX_DELAY)

    def _watched(self, lines: Iterable[str], url: str) -> Iterator[str]:
        """``lines``, noting the return of the agent at the first one after a break."""
        for index, line in enumerate(lines):
            self._connected = True
            if self._broken:
                self._broken = False
                self.term.note(f"reconnected to the agent at {url}", style=None)
            if index > 0 and line:  # a ping or an event after the greeting: it is alive
                self._away_since, self._delay = None, FIRST_DELAY
            yield line


def read_events(lines: Iterable[str]) -> Iterator[Any]:
    """Decoded JSON payloads of a server-sent event stream."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                payload = "\n".join(data)
                data = []
                try:
                    yield json.loads(payload)
                except ValueError:
                    continue
            continue
        if line.startswith(":"):
            continue  # a comment, e.g. the agent's keep-alive ping
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        try:
            yield json.loads("\n".join(data))
        except ValueError:
            pass
