"""Host uids for sandboxes, one per running sandbox, from a reserved range.

A uid of its own keeps what the kernel counts per user to one sandbox (processes before
Linux 5.14, pipe buffers, inotify, pending signals) and means that a sandbox which
escaped its namespaces is still a stranger to every other sandbox's processes and files.

Every agent on a host draws from the same range, so a uid is also held host-wide: an
exclusive ``flock`` on ``LOCK_DIR/UID`` for as long as a sandbox runs as it. The kernel
drops such a lock when its holder dies, so a killed agent leaves no uid taken.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import threading
from pathlib import Path

from hyac_common.errors import SandboxUnavailable

log = logging.getLogger("hyac.sandbox")

#: where agents run as root hold their sandboxes' uids (one lock file per uid)
LOCK_DIR = Path("/run/hyac/sandbox-uids")


def _lock_dir(path: Path) -> Path | None:
    """``path``, made private to root if need be; None where it cannot be had (then
    uids are only exclusive within this agent)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            log.warning("%s is not private to this user: sandbox uids are held for this "
                        "agent only", path)
            return None
    except OSError as exc:
        log.warning("cannot use %s (%s): sandbox uids are held for this agent only",
                    path, exc.strerror)
        return None
    return path


class UidPool:
    """Hands out the uids ``first`` .. ``first + count - 1``; each is held until returned.

    A returned uid goes to the back of the queue: the processes of a sandbox just killed
    may take a moment to be gone, and its uid is not handed out again meanwhile. With a
    ``lock_dir``, a uid another agent holds is passed over (and tried again later).
    """

    def __init__(self, first: int, count: int, lock_dir: Path | None = None) -> None:
        self.first = first
        self.count = count
        self._free = collections.deque(range(first, first + count))
        self._in_use: dict[int, int | None] = {}  # uid -> the descriptor holding its lock
        self._lock = threading.Lock()
        self._lock_dir = _lock_dir(lock_dir) if lock_dir is not None else None

    def take(self) -> int:
        with self._lock:
            for _ in range(len(self._free)):
                uid = self._free.popleft()
                held = self._hold(uid)
                if held is False:  # another agent's sandbox runs as it
                    self._free.append(uid)
                    continue
                self._in_use[uid] = held
                return uid
            raise SandboxUnavailable(f"all {self.count} sandbox uids from {self.first} are in use")

    def give_back(self, uid: int) -> None:
        with self._lock:
            if uid in self._in_use:
                fd = self._in_use.pop(uid)
                if fd is not None:
                    os.close(fd)  # releases the host-wide lock
                self._free.append(uid)

    def _hold(self, uid: int) -> int | None | bool:
        """The descriptor now locking ``uid`` host-wide; None without a lock dir; False
        when another process holds it."""
        if self._lock_dir is None:
            return None
        try:
            fd = os.open(self._lock_dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot lock sandbox uid {uid}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise SandboxUnavailable(f"cannot lock sandbox uid {uid}: {exc.strerror}") from None
        return fd
