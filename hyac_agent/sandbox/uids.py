"""Host uids for sandboxes, one per running sandbox, from a reserved range.

A uid of its own keeps what the kernel counts per user to one sandbox (processes before
Linux 5.14, pipe buffers, inotify, pending signals) and means that a sandbox which
escaped its namespaces is still a stranger to every other sandbox's processes and files.
"""

from __future__ import annotations

import collections
import threading

from hyac_common.errors import SandboxUnavailable


class UidPool:
    """Hands out the uids ``first`` .. ``first + count - 1``; each is held until returned.

    A returned uid goes to the back of the queue: the processes of a sandbox just killed
    may take a moment to be gone, and its uid is not handed out again meanwhile.
    """

    def __init__(self, first: int, count: int) -> None:
        self.first = first
        self.count = count
        self._free = collections.deque(range(first, first + count))
        self._in_use: set[int] = set()
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            if not self._free:
                raise SandboxUnavailable(f"all {self.count} sandbox uids from {self.first} are in use")
            uid = self._free.popleft()
            self._in_use.add(uid)
            return uid

    def give_back(self, uid: int) -> None:
        with self._lock:
            if uid in self._in_use:
                self._in_use.remove(uid)
                self._free.append(uid)
