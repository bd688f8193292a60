"""Open streams per user. A log follower or a task watcher holds a connection, a task
and a queue for as long as it stays open, so one account could otherwise open them until
the agent runs out of file descriptors for everyone; each user may hold only
``HYAC_STREAMS_PER_USER`` at once (the platform owner is not limited)."""

from __future__ import annotations

import collections
import weakref
from collections.abc import AsyncIterator, Callable

from hyac_agent.tenancy import Principal
from hyac_common.errors import TooManyStreams


class StreamSlots:
    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: collections.Counter[str] = collections.Counter()

    def take(self, principal: Principal) -> Callable[[], None]:
        """A slot for one more stream of ``principal`` (TooManyStreams past the limit);
        returns its release, which may be called more than once."""
        if principal.owner:
            return lambda: None
        user = f"{principal.kind}:{principal.id or principal.name}"
        if self._open[user] >= self.per_user:
            raise TooManyStreams(
                f"{principal.name} has {self.per_user} log or task streams open already, as many as a "
                "user may; close one first", limit=self.per_user)
        self._open[user] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[user] -= 1
                if self._open[user] <= 0:
                    del self._open[user]

        return release

    @staticmethod
    def holding(release: Callable[[], None], events: AsyncIterator[str]) -> AsyncIterator[str]:
        """``events``, holding the slot ``take`` gave until it ends, or, if the client
        went before it started (so its ``finally`` never runs), until it is collected."""

        async def held() -> AsyncIterator[str]:
            try:
                async for event in events:
                    yield event
            finally:
                release()

        stream = held()
        weakref.finalize(stream, release)
        return stream
