"""Resource limits for process-based sandboxes: cgroups (v1 or v2) where the agent may
create them, else rlimits.

With cgroups each sandbox gets its own group under the agent's own (memory, pids, CPU).
The agent moves a started sandbox's processes in (``CgroupSet.adopt``) before the worker
is sent any code, each process before its children are listed, so nothing the sandbox
forks can be outside it; on a kernel whose /proc does not list children, a tiny shell
prefix enters the group *before* bubblewrap starts instead (slower by 10-15 ms). Memory
the interpreter touched before the move stays charged where it was (cgroups do not move
charges with a process): the group's limit counts what the worker does from then on,
the function's code included. The memory group also tells an OOM kill apart from a
crash. Without
writable cgroups the worker runs under rlimits: a private-memory cap (``RLIMIT_DATA`` at
the memory quota, with ``RLIMIT_AS`` above it as a backstop), a per-sandbox process cap
(``RLIMIT_NPROC`` counts per user namespace on Linux 5.14+, and each sandbox has its own)
and a CPU-seconds cap.
``RLIMIT_FSIZE`` (largest file written) applies in both modes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import signal
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("hyac.sandbox")

MiB = 1024 * 1024


@dataclass(frozen=True)
class ResourceLimits:
    memory_bytes: int = 256 * MiB
    pids: int = 128
    cpus: float = 1.0
    tmp_bytes: int = 64 * MiB
    #: the largest file a function may write (RLIMIT_FSIZE)
    file_bytes: int = 64 * MiB
    #: CPU seconds over a worker's life, under rlimits only (the timeout is per request)
    cpu_seconds: int = 3600

    def with_memory(self, memory_bytes: int | None) -> ResourceLimits:
        return replace(self, memory_bytes=memory_bytes) if memory_bytes else self


def base_rlimits(limits: ResourceLimits) -> dict[str, int]:
    """The rlimits every sandbox gets, cgroups or not, by prlimit's option names."""
    # 1024 descriptors, as Docker gives: enough for any function, and the kernel memory
    # each open file pins stays small.
    return {"fsize": limits.file_bytes, "core": 0, "nofile": 1024}


def worker_rlimits(limits: ResourceLimits) -> str:
    """``base_rlimits`` as ``HYAC_RLIMITS`` gives them to a worker that sets them on
    itself before it reads its function (``[rlimits] applied_by_worker``): ``fsize:N,…``."""
    return ",".join(f"{name}:{value}" for name, value in base_rlimits(limits).items())


def rlimit_prefix(limits: ResourceLimits, cgroups: bool, reserved_bytes: int = 0) -> list[str]:
    """``prlimit … --`` run inside the sandbox just before the worker; ``reserved_bytes``:
    address space the runtime reserves without touching it (``Runtime.reserved_bytes``)."""
    args = ["prlimit", *(f"--{name}={value}" for name, value in base_rlimits(limits).items())]
    if not cgroups:
        # RLIMIT_DATA (private writable memory: heap, anonymous maps, thread stacks) is
        # what binds the quota: it tracks a worker's resident size closely, and malloc
        # fails (MemoryError) past it. RLIMIT_AS only backstops shared and file maps, with
        # room for the address space threads and glibc arenas reserve but never touch.
        args += [
            f"--data={limits.memory_bytes}",
            f"--as={limits.memory_bytes + 512 * MiB + reserved_bytes}",
            f"--nproc={limits.pids}",
            f"--cpu={limits.cpu_seconds}",
        ]
    return args + ["--"]


def _kernel_version() -> tuple[int, int]:
    release = os.uname().release
    parts = (release.split("-", 1)[0].split(".") + ["0"])[:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return 0, 0


def rlimits_unenforceable(host_uid: int, uid_per_sandbox: bool = False) -> str | None:
    """Why rlimits cannot stand in for cgroups for sandboxes run as ``host_uid``, or None.

    The kernel never applies RLIMIT_NPROC to host root, and before Linux 5.14 it counts
    every process of a host uid together, so where sandboxes share a uid one sandbox's
    fork bomb would starve the others: a process limit that does not hold per sandbox.
    """
    if host_uid == 0:
        return (
            "sandboxes would run as host root, for which the kernel ignores the process "
            "limit (install setpriv, util-linux, so they run unprivileged)"
        )
    if not uid_per_sandbox and _kernel_version() < (5, 14):
        return (
            f"Linux {os.uname().release} counts the process limit per host uid, not per "
            "sandbox (5.14 or later counts it per user namespace)"
        )
    return None


# cgroups ------------------------------------------------------------------------------

_V1_CONTROLLERS = ("memory", "pids", "cpu")


def _own_cgroups() -> dict[str, str]:
    """controller → this process's cgroup path ("" key: the v2 unified group)."""
    result: dict[str, str] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                result[name] = path
    return result


def _mounts() -> tuple[dict[str, str], str | None]:
    """(v1 controller → mount point, v2 mount point)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fstype, _source, options = (right.split() + ["", "", ""])[:3]
            mount_point = left.split()[4]
            if fstype == "cgroup2" and v2 is None:
                v2 = mount_point
            elif fstype == "cgroup":
                for option in options.split(","):
                    if option in _V1_CONTROLLERS and option not in v1:
                        v1[option] = mount_point
    return v1, v2


class CgroupSet:
    """The cgroup(s) of one sandbox."""

    def __init__(self, version: str, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs  # controller → directory (v2: one entry, key "")

    def _write(self, controller: str, name: str, value: str) -> None:
        (self.dirs[controller] / name).write_text(value)

    def set_limits(self, limits: ResourceLimits) -> None:
        memory = str(limits.memory_bytes)
        if self.version == "v1":
            period = int((self.dirs["cpu"] / "cpu.cfs_period_us").read_text())
            self._write("cpu", "cpu.cfs_quota_us", str(int(period * limits.cpus)))
            self._write("pids", "pids.max", str(limits.pids))
            memsw = self.dirs["memory"] / "memory.memsw.limit_in_bytes"
            # memsw must stay >= the memory limit: order the two writes accordingly.
            try:
                self._write("memory", "memory.limit_in_bytes", memory)
                if memsw.exists():
                    memsw.write_text(memory)
            except OSError:
                if not memsw.exists():
                    raise
                memsw.write_text(memory)
                self._write("memory", "memory.limit_in_bytes", memory)
        else:
            self._write("", "memory.max", memory)
            with contextlib.suppress(OSError):
                self._write("", "memory.swap.max", "0")
            self._write("", "pids.max", str(limits.pids))
            self._write("", "cpu.max", f"{int(100_000 * limits.cpus)} 100000")

    def enter_prefix(self) -> list[str]:
        """A command prefix that moves itself into the group(s), then execs the rest.

        Slow for a sandbox: a process that moved itself into a fresh group started
        bubblewrap and the worker's interpreter 10-15 ms later than one the agent moved
        (cgroup v1, measured in benchmarks/README.md). Sandboxes use ``adopt`` where
        /proc lists children (``can_adopt``)."""
        moves = " && ".join(
            f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in self.dirs.values()
        )
        return ["/bin/sh", "-c", f'{moves} && exec "$@"', "hyac-enter"]

    def adopt(self, pid: int) -> None:
        """Move process ``pid`` and every descendant it has into the group(s).

        Each process is moved before its children are listed, so one forked meanwhile
        is either born in the group or found in the list. A process that has exited is
        passed over; any other failure raises OSError (the caller must not let the
        process run outside its limits)."""
        pending = [pid]
        while pending:
            current = pending.pop()
            for d in self.dirs.values():
                try:
                    (d / "cgroup.procs").write_text(str(current))
                except ProcessLookupError:  # gone: nothing left to confine
                    break
            else:
                pending += _children(current)

    def oom_killed(self) -> bool:
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        controller = "memory" if self.version == "v1" else ""
        try:
            text = (self.dirs[controller] / name).read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip() not in ("", "0"):
                return True
        return False

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return sorted(found)

    def kill_all(self) -> None:
        if self.version == "v2" and (self.dirs[""] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                self._write("", "cgroup.kill", "1")
            return
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Kill whatever is left in the group(s) and delete them."""
        deadline = time.monotonic() + 5
        for d in self.dirs.values():
            while True:
                self.kill_all()
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        log.warning("could not remove cgroup %s", d)
                        break
                    time.sleep(0.02)


@lru_cache(maxsize=1)
def can_adopt() -> bool:
    """Whether /proc lists each task's children (CONFIG_PROC_CHILDREN), which ``adopt``
    relies on to find every process of a tree."""
    return os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _children(pid: int) -> list[int]:
    """The children of every thread of process ``pid`` (none once it has exited)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found += [int(child) for child in fh.read().split()]
    return found


class CgroupManager:
    """Creates per-sandbox cgroups under the agent's own, when the host lets it."""

    def __init__(self, version: str, parents: dict[str, Path]) -> None:
        self.version = version
        self.parents = parents

    def create(self, limits: ResourceLimits) -> CgroupSet:
        # Random only: a sandbox moved in after bubblewrap made its cgroup namespace sees
        # this name (``adopt``), so it must say nothing about the host (not the agent's pid).
        name = f"hyac-{secrets.token_hex(8)}"
        dirs: dict[str, Path] = {}
        try:
            for controller, parent in self.parents.items():
                path = parent / name
                path.mkdir()
                dirs[controller] = path
            group = CgroupSet(self.version, dirs)
            group.set_limits(limits)
        except BaseException:
            CgroupSet(self.version, dirs).remove()
            raise
        return group


def _probe_v1() -> tuple[CgroupManager | None, str]:
    mounts, _ = _mounts()
    own = _own_cgroups()
    missing = [c for c in _V1_CONTROLLERS if c not in mounts]
    if missing:
        return None, f"cgroup v1 controllers not mounted: {', '.join(missing)}"
    parents = {c: Path(mounts[c]) / own.get(c, "/").lstrip("/") for c in _V1_CONTROLLERS}
    manager = CgroupManager("v1", parents)
    try:
        manager.create(ResourceLimits()).remove()
    except OSError as exc:
        return None, f"cgroup v1 is not writable here ({exc.strerror}: {exc.filename})"
    return manager, "cgroup v1 (memory, pids, cpu)"


def _probe_v2() -> tuple[CgroupManager | None, str]:
    _, mount = _mounts()
    if mount is None:
        return None, "no cgroup2 mount"
    own = _own_cgroups().get("", "/")
    parent = Path(mount) / own.lstrip("/")
    try:
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError as exc:
        return None, f"cgroup v2 unreadable: {exc}"
    needed = {"memory", "pids", "cpu"}
    if not needed <= enabled:
        try:
            (parent / "cgroup.subtree_control").write_text(
                " ".join(f"+{c}" for c in sorted(needed - enabled))
            )
        except OSError:
            return None, (
                f"cgroup v2 controllers {', '.join(sorted(needed - enabled))} are not delegated "
                f"to {parent} (run the agent in a delegated cgroup, e.g. systemd Delegate=yes)"
            )
    manager = CgroupManager("v2", {"": parent})
    try:
        manager.create(ResourceLimits()).remove()
    except OSError as exc:
        return None, f"cgroup v2 is not writable here ({exc.strerror}: {exc.filename})"
    return manager, "cgroup v2 (memory, pids, cpu)"


@lru_cache(maxsize=1)
def cgroup_manager() -> tuple[CgroupManager | None, str]:
    """(the manager, a description) — or (None, why cgroups cannot be used)."""
    if os.environ.get("HYAC_CGROUPS", "").lower() in ("0", "off", "no", "false"):
        return None, "cgroups disabled by HYAC_CGROUPS=off"
    reasons = []
    for probe in (_probe_v2, _probe_v1):
        try:
            manager, text = probe()
        except OSError as exc:
            manager, text = None, str(exc)
        if manager is not None:
            return manager, text
        reasons.append(text)
    return None, "; ".join(reasons)
