"""The unsandboxed mode's guard: a PEP 578 audit hook that catches accidents.

Installed by bootstrap.py before the function's code runs when the agent runs without a
sandbox (``hyac-agent serve --insecure-no-sandbox``, which sets ``HYAC_GUARD=1``). It
refuses, with a PermissionError naming what was refused:

- opening, listing or changing files outside the function's code, its dependencies,
  the interpreter's own library, the runtime and the worker's temp dir (``TMPDIR``);
  writes anywhere but the temp dir;
- starting programs: subprocess, os.system, os.exec*, os.spawn*, os.posix_spawn, fork;
- network: socket connect, bind, sendto and name look-ups (the agent channel is open
  before the hook is installed and needs none of these);
- native code through ctypes.

This is NOT a security boundary: code that wants to can get around an audit hook
(native extensions, for one, make system calls without events). It keeps honest code
from doing by accident what a sandbox would refuse, so that a function developed on a
machine without bubblewrap does not break once it runs sandboxed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

NOTE = "unsandboxed mode guard; this is not a security boundary"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
#: read-only system files harmless code reads through Python (time zones, null device)
_SYSTEM_READS = ("/usr/share/zoneinfo", "/etc/localtime", "/dev/null", "/dev/urandom")
_PROCESS_EVENTS = {
    "subprocess.Popen": "starting a subprocess",
    "os.system": "running a shell command (os.system)",
    "os.exec": "replacing the process (os.exec*)",
    "os.spawn": "starting a process (os.spawn*)",
    "os.posix_spawn": "starting a process (os.posix_spawn)",
    "os.fork": "forking the process",
    "os.forkpty": "forking the process",
    "pty.spawn": "starting a process (pty.spawn)",
    "os.kill": "signalling a process",
    "os.killpg": "signalling a process group",
}
_NETWORK_EVENTS = {
    "socket.connect": "connecting a socket",
    "socket.bind": "binding a socket",
    "socket.sendto": "sending on a socket (sendto)",
    "socket.sendmsg": "sending on a socket (sendmsg)",
}
_LOOKUP_EVENTS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr")
_CTYPES_EVENTS = {
    "ctypes.dlopen": "loading native code with ctypes",
    "ctypes.dlsym": "loading native code with ctypes",
    "ctypes.cdata": "reading raw memory with ctypes",
    "ctypes.call_function": "calling native code with ctypes",
}
#: path events: event -> (verb, which arguments are paths, whether it writes)
_PATH_EVENTS: dict[str, tuple[str, tuple[int, ...], bool]] = {
    "os.listdir": ("listing", (0,), False),
    "os.scandir": ("listing", (0,), False),
    "os.chdir": ("entering", (0,), False),
    "glob.glob": ("listing", (0,), False),
    "os.remove": ("removing", (0,), True),
    "os.rmdir": ("removing", (0,), True),
    "os.mkdir": ("creating", (0,), True),
    "os.rename": ("renaming", (0, 1), True),
    "os.link": ("linking", (0, 1), True),
    "os.symlink": ("linking", (1,), True),
    "os.chmod": ("changing", (0,), True),
    "os.chown": ("changing", (0,), True),
    "os.truncate": ("truncating", (0,), True),
    "os.utime": ("changing", (0,), True),
    "shutil.rmtree": ("removing", (0,), True),
}


class Guard:
    """Decides, per audit event, whether the worker may go on."""

    def __init__(self, readable: Iterable[str], writable: Iterable[str]) -> None:
        self.writable = _roots(writable)
        self.readable = _roots(readable) + self.writable

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            self._check_open(args)
        elif event in _PATH_EVENTS:
            verb, positions, writes = _PATH_EVENTS[event]
            for position in positions:
                if position < len(args):
                    self._check_path(verb, args[position], writes)
        elif event in _PROCESS_EVENTS:
            refuse(_PROCESS_EVENTS[event])
        elif event in _NETWORK_EVENTS:
            target = _describe_address(args[1]) if len(args) > 1 else ""
            refuse(_NETWORK_EVENTS[event] + target)
        elif event in _LOOKUP_EVENTS:
            refuse(f"looking up {args[0]!s}" if args else "looking up a host")
        elif event in _CTYPES_EVENTS:
            refuse(_CTYPES_EVENTS[event])

    def _check_open(self, args: tuple[Any, ...]) -> None:
        path = args[0] if args else None
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        )
        self._check_path("writing" if writes else "opening", path, writes)

    def _check_path(self, verb: str, path: Any, writes: bool) -> None:
        if path is None or isinstance(path, int):
            return  # a descriptor the code already holds
        try:
            text = os.fsdecode(path)
        except TypeError:
            return
        real = os.path.realpath(text)
        roots = self.writable if writes else self.readable
        if not any(_inside(real, root) for root in roots):
            refuse(f"{verb} {text}")


def refuse(what: str) -> None:
    raise PermissionError(f"hyac: {what} is not allowed ({NOTE})")


def _describe_address(address: Any) -> str:
    if isinstance(address, tuple) and address:
        return " to " + ":".join(str(part) for part in address[:2])
    if isinstance(address, (str, bytes)) and address:
        return f" to {os.fsdecode(address)}"
    return ""


def _roots(paths: Iterable[str]) -> list[str]:
    return sorted({os.path.realpath(p) for p in paths if p})


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def install(code_dir: str, runtime_dir: str) -> Guard:
    """Install the hook for the rest of the process's life (audit hooks cannot be removed)."""
    temp = os.environ.get("TMPDIR") or "/tmp"
    library = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    readable = [code_dir, runtime_dir, *library, *_SYSTEM_READS,
                *(p for p in sys.path if p and os.path.isdir(p))]
    guard = Guard(readable, [temp])
    sys.addaudithook(guard)
    return guard
