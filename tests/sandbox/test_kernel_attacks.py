"""Attacks on the kernel's surface, batched: one hostile function per backend runs every
probe below, each writing its marker (the run's nonce and the probe's name) into its
result before it tries; each probe is then judged by its own test case: the marker is
there (the attack ran), the attack gained nothing, and the agent still serves the victim
tenant. The system call numbers are x86_64's, as Linux defines them.
"""

from __future__ import annotations

import errno
import platform
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.conftest import VICTIM, Target
from tests.sandbox.test_escapes import ATTEMPT

PROBES = r'''
import ctypes, resource, shutil, signal, stat, struct, subprocess, time
P = {}

def write(path, text):
    with open(path, "w") as fh:  # closed here: a write's error surfaces at the flush
        fh.write(text)

def buf(data=b"", size=0):
    b = ctypes.create_string_buffer(data, max(size, len(data)))
    return ctypes.addressof(b), b

def sibling():
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    return pid

def reap(pid):
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)

def on_sibling(fn):
    pid = sibling()
    try:
        return fn(pid)
    finally:
        reap(pid)

def io_uring_setup():
    addr, _b = buf(size=120)
    return syscall(425, 8, addr)
P["io_uring_setup"] = io_uring_setup
P["io_uring_register"] = lambda: syscall(427, 0, 0, 0, 0)
P["userfaultfd"] = lambda: syscall(323, 0)

def perf_event_open():
    attr, _b = buf(struct.pack("<IIQ", 1, 128, 0), 128)  # PERF_TYPE_SOFTWARE, cpu clock
    return syscall(298, attr, 0, -1, -1, 0)
P["perf_event_open"] = perf_event_open

def bpf_map_create():
    attr, _b = buf(struct.pack("<IIII", 2, 4, 4, 1), 72)  # BPF_MAP_TYPE_ARRAY
    return syscall(321, 0, attr, 72)
P["bpf"] = bpf_map_create
P["keyctl"] = lambda: syscall(250, 1, ctypes.addressof(ctypes.create_string_buffer(b"hyac")))

def add_key():
    kind, name, payload = (ctypes.create_string_buffer(s) for s in (b"user", b"hyac", b"x"))
    return syscall(248, ctypes.addressof(kind), ctypes.addressof(name), ctypes.addressof(payload), 1, -3)
P["add_key"] = add_key

def request_key():
    kind, name = (ctypes.create_string_buffer(s) for s in (b"user", b"hyac"))
    return syscall(249, ctypes.addressof(kind), ctypes.addressof(name), 0, 0)
P["request_key"] = request_key
P["ptrace_agent"] = lambda: syscall(101, 16, int(q["agent_pid"]), 0, 0)
P["ptrace_sibling"] = lambda: on_sibling(lambda pid: syscall(101, 16, pid, 0, 0))

def process_vm_readv(pid):
    target, _t = buf(size=64)
    local = (ctypes.c_void_p * 2)(target, 64)
    remote = (ctypes.c_void_p * 2)(id(0), 64)
    return syscall(310, pid, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)
P["process_vm_readv_sibling"] = lambda: on_sibling(process_vm_readv)
P["kill_agent"] = lambda: os.kill(int(q["agent_pid"]), signal.SIGKILL)
P["unshare_user"] = lambda: syscall(272, 0x10000000)
P["unshare_mount"] = lambda: syscall(272, 0x00020000)
P["unshare_net"] = lambda: syscall(272, 0x40000000)

def clone_newuser():
    pid = syscall(56, 0x10000000 | signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
P["clone_newuser"] = clone_newuser

def clone3():
    args, _b = buf(struct.pack("<QQQQQQQQQQQ", 0x10000000, 0, 0, 0, signal.SIGCHLD, 0, 0, 0, 0, 0, 0), 88)
    pid = syscall(435, args, 88)
    if pid == 0:
        os._exit(0)
    return pid
P["clone3"] = clone3
P["setns_user"] = lambda: syscall(308, os.open("/proc/self/ns/user", os.O_RDONLY), 0)

def mount(source, target, fstype, flags=0):
    os.makedirs(target, exist_ok=True)
    if libc.mount(source, target, fstype, flags, None) != 0:
        raise OSError(ctypes.get_errno(), "mount")
P["mount_proc"] = lambda: mount(b"proc", b"/tmp/proc", b"proc")
P["mount_bind_root"] = lambda: mount(b"/", b"/tmp/root", None, 4096)  # MS_BIND

def umount_code():
    if libc.umount2(b"/code", 2) != 0:
        raise OSError(ctypes.get_errno(), "umount2")
P["umount_code"] = umount_code

def pivot_root():
    new, old = ctypes.create_string_buffer(b"/tmp"), ctypes.create_string_buffer(b"/tmp")
    return syscall(155, ctypes.addressof(new), ctypes.addressof(old))
P["pivot_root"] = pivot_root
P["chroot"] = lambda: os.chroot("/tmp")
P["fsopen"] = lambda: syscall(430, ctypes.addressof(ctypes.create_string_buffer(b"tmpfs")), 0)
P["open_tree"] = lambda: syscall(428, -100, ctypes.addressof(ctypes.create_string_buffer(b"/")), 1)
P["kexec_load"] = lambda: syscall(246, 0, 0, 0, 0)
P["kexec_file_load"] = lambda: syscall(320, -1, -1, 0, 0, 4)  # KEXEC_FILE_NO_INITRAMFS

def init_module():
    image, _b = buf(b"\x7fELF" + b"\0" * 60)
    return syscall(175, image, 64, ctypes.addressof(ctypes.create_string_buffer(b"")))
P["init_module"] = init_module
P["finit_module"] = lambda: syscall(313, os.open("/dev/null", os.O_RDONLY), ctypes.addressof(ctypes.create_string_buffer(b"")), 0)
P["delete_module"] = lambda: syscall(176, ctypes.addressof(ctypes.create_string_buffer(b"ext4")), 0o4000)

def open_by_handle_at():
    # "shocker": a handle for inode 2 (a filesystem's root) opened through any fd
    handle, _b = buf(struct.pack("<IiII", 8, 1, 2, 0))
    return syscall(304, os.open("/tmp", os.O_RDONLY), handle, 0)
P["open_by_handle_at"] = open_by_handle_at

def name_to_handle_at():
    handle, _b = buf(struct.pack("<Ii", 128, 0), 136)
    mount_id = ctypes.c_int()
    return syscall(303, -100, ctypes.addressof(ctypes.create_string_buffer(b"/tmp")), handle, ctypes.addressof(mount_id), 0)
P["name_to_handle_at"] = name_to_handle_at
P["proc_sys_core_pattern"] = lambda: write("/proc/sys/kernel/core_pattern", "|/tmp/pwn")
P["proc_sys_vm_drop_caches"] = lambda: write("/proc/sys/vm/drop_caches", "3")
P["sysrq_trigger"] = lambda: write("/proc/sysrq-trigger", "h")
P["proc_1_root"] = lambda: os.listdir("/proc/1/root" + q["data_dir"])

def cgroup_write():
    results = []
    for make in (lambda: os.mkdir("/sys/fs/cgroup/hyac-escape"),
                 lambda: write("/sys/fs/cgroup/cgroup.procs", str(os.getpid())),
                 lambda: write("/sys/fs/cgroup/pids.max", "max")):
        results.append(attempt(make))
    if any(r["ok"] for r in results):
        return results
    raise PermissionError(str([r["error"] for r in results]))
P["cgroup_write"] = cgroup_write

def netlink_new_address():
    # RTM_NEWADDR 10.66.0.1/32 on lo: changes the sandbox's routing if it were allowed
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
    payload = struct.pack("<BBBBI", socket.AF_INET, 32, 0, 0, 1)
    payload += struct.pack("<HH", 8, 2) + socket.inet_aton("10.66.0.1")  # IFA_LOCAL
    payload += struct.pack("<HH", 8, 1) + socket.inet_aton("10.66.0.1")  # IFA_ADDRESS
    s.send(struct.pack("<IHHII", 16 + len(payload), 20, 0x1 | 0x4 | 0x400 | 0x200, 1, 0) + payload)
    answer = s.recv(4096)
    code = struct.unpack("<i", answer[16:20])[0]
    if code:
        raise OSError(-code, os.strerror(-code))
    return "address added"
P["netlink_route_change"] = netlink_new_address
P["af_vsock"] = lambda: socket.socket(40, socket.SOCK_STREAM)
P["af_packet_dgram"] = lambda: socket.socket(17, socket.SOCK_DGRAM, 0)
P["raw_socket_tcp"] = lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)

def abstract_socket():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect("\0" + q["abstract"])
    return s.recv(100).decode()
P["host_abstract_socket"] = abstract_socket
P["cloud_metadata"] = lambda: connect("169.254.169.254", 80)

def agent_over_ipv6():
    s = socket.create_connection(("::1", int(q["agent_port"])), timeout=2)
    s.close()
    return "connected"
P["agent_port_ipv6"] = agent_over_ipv6
P["environ"] = lambda: read("/proc/self/environ", 1 << 16)

def setuid_mount():
    found = [p for p in ("/usr/bin/mount", "/bin/mount") if os.path.exists(p) and os.stat(p).st_mode & stat.S_ISUID]
    if not found:
        return "no setuid mount binary"
    os.makedirs("/tmp/m", exist_ok=True)
    run = subprocess.run([found[0], "-t", "tmpfs", "none", "/tmp/m"], capture_output=True, timeout=10)
    if run.returncode:
        raise PermissionError(run.returncode, run.stderr.decode(errors="replace")[:150])
    return "mounted"
P["setuid_binary"] = setuid_mount

def chmod_suid_tmp():
    shutil.copy(sys.executable, "/tmp/suid-python")
    os.chmod("/tmp/suid-python", 0o4755)
    out = subprocess.run(["/tmp/suid-python", "-c", "import os; print(os.geteuid())"], capture_output=True, timeout=20)
    os.unlink("/tmp/suid-python")
    return int(out.stdout or -1)
P["chmod_suid_in_tmp"] = chmod_suid_tmp
def mknod_open(path, kind, major, minor):
    os.mknod(path, 0o600 | kind, os.makedev(major, minor))
    with open(path, "rb") as fh:  # a node that could be made must still reach no device
        return fh.read(16).hex()
P["mknod_block_device"] = lambda: mknod_open("/tmp/sda", stat.S_IFBLK, 8, 0)
P["mknod_dev_mem"] = lambda: mknod_open("/tmp/mem", stat.S_IFCHR, 1, 1)

def host_devices():
    opened = []
    for path in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/kmsg"):
        try:
            os.close(os.open(path, os.O_RDONLY))
            opened.append(path)
        except OSError:
            pass
    if opened:
        return opened
    raise FileNotFoundError("no host device opened")
P["host_devices"] = host_devices
P["status"] = lambda: read("/proc/self/status")
P["prctl_status"] = lambda: [libc.prctl(39, 0, 0, 0, 0), libc.prctl(21, 0, 0, 0, 0)]  # NNP, seccomp
P["personality"] = lambda: syscall(135, 0x0400000)  # READ_IMPLIES_EXEC

def tiocsti():
    try:
        fd = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        fd = 0
    char = ctypes.create_string_buffer(b"x")
    if libc.ioctl(fd, 0x5412, char) != 0:
        raise OSError(ctypes.get_errno(), "TIOCSTI")
    return "injected"
P["tiocsti"] = tiocsti
P["ioperm"] = lambda: syscall(173, 0x80, 1, 1)
P["iopl"] = lambda: syscall(172, 3)

def clock_settime():
    spec, _b = buf(struct.pack("<qq", 1, 0))
    return syscall(227, 0, spec)
P["clock_settime"] = clock_settime

def settimeofday():
    tv, _b = buf(struct.pack("<qq", 1, 0))
    return syscall(164, tv, 0)
P["settimeofday"] = settimeofday

def clock_adjtime():
    timex, _b = buf(struct.pack("<I", 0x0001), 208)  # ADJ_OFFSET
    return syscall(305, 0, timex)
P["clock_adjtime"] = clock_adjtime
P["swapon"] = lambda: syscall(167, ctypes.addressof(ctypes.create_string_buffer(b"/tmp/swap")), 0)
P["reboot"] = lambda: syscall(169, 0xfee1dead, 672274793, 0)  # LINUX_REBOOT_CMD_CAD_OFF
P["acct"] = lambda: syscall(163, ctypes.addressof(ctypes.create_string_buffer(b"/tmp/acct")))
P["quotactl"] = lambda: syscall(179, 0x800001, ctypes.addressof(ctypes.create_string_buffer(b"/dev/sda")), 0, 0)  # Q_SYNC
P["syslog_read"] = lambda: syscall(103, 3, buf(size=4096)[0], 4096)
P["kallsyms"] = lambda: read("/proc/kallsyms", 1 << 16)

def fd_exhaustion():
    fds = []
    try:
        while len(fds) < 1 << 20:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        raise OSError(exc.errno, f"stopped after {len(fds)} descriptors") from None
    finally:
        for fd in fds:
            os.close(fd)
    return len(fds)
P["fd_exhaustion"] = fd_exhaustion
P["raise_priority"] = lambda: os.setpriority(os.PRIO_PROCESS, 0, -20)
P["realtime_scheduling"] = lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))

def mlock_64mib():
    addr, _b = buf(size=64 << 20)
    if libc.mlock(ctypes.c_void_p(addr), ctypes.c_size_t(64 << 20)) != 0:
        raise OSError(ctypes.get_errno(), "mlock")
    return "locked"
P["mlock"] = mlock_64mib

def raise_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    return [soft, hard]
P["raise_file_size_limit"] = raise_hard_limit
def unkillable():
    write("/proc/self/oom_score_adj", "-1000")
    return int(read("/proc/self/oom_score_adj"))
P["unkillable_oom_score"] = unkillable
P["kcmp"] = lambda: syscall(312, os.getpid(), os.getpid(), 0, 0, 0)
P["lookup_dcookie"] = lambda: syscall(212, 0, buf(size=64)[0], 64)
P["fanotify_init"] = lambda: syscall(300, 0, 0)
P["pidfd_getfd"] = lambda: syscall(438, syscall(434, os.getpid(), 0), 0, 0)
P["vhangup"] = lambda: syscall(153)
P["sethostname_raw"] = lambda: syscall(170, ctypes.addressof(ctypes.create_string_buffer(b"pwned")), 5)

def main(context):
    global q
    q = context.request.query
    out = {}
    for name, probe in P.items():
        out[name] = {"marker": q["nonce"] + ":" + name}
        out[name].update(attempt(probe))
    return out
'''

# attempt() records the error as text: "OSError: [Errno 1] Operation not permitted".
DENIED = (errno.EPERM, errno.EACCES, errno.ENOSYS)


@dataclass
class Verdict:
    """How one probe must end: ``check`` gets the probe's result and the target."""

    check: Callable[[dict[str, Any], Target], None]


def refused(*codes: int) -> Verdict:
    """The call failed with one of ``codes`` (EPERM, EACCES or ENOSYS by default)."""
    allowed = codes or DENIED

    def check(result: dict[str, Any], target: Target) -> None:
        assert not result["ok"], f"the attack succeeded: {result}"
        assert any(f"[Errno {code}]" in result["error"] for code in allowed), result

    return Verdict(check)


def failed_somehow() -> Verdict:
    """The attack failed (how depends on the backend: missing, read-only, refused)."""

    def check(result: dict[str, Any], target: Target) -> None:
        assert not result["ok"], f"the attack succeeded: {result}"

    return Verdict(check)


def _status(result: dict[str, Any], target: Target) -> dict[str, str]:
    assert result["ok"], result
    return dict(line.split(":\t", 1) for line in result["value"].splitlines() if ":\t" in line)


def _no_capabilities(result: dict[str, Any], target: Target) -> None:
    status = _status(result, target)
    # gVisor's /proc/self/status has no CapAmb line (it has no ambient capabilities)
    keys = ("CapInh", "CapPrm", "CapEff") + (() if target.backend == "gvisor" else ("CapAmb",))
    for key in keys:
        assert int(status[key], 16) == 0, (key, status[key])


def _no_new_privileges(result: dict[str, Any], target: Target) -> None:
    status = _status(result, target)
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2", "a seccomp filter is in force"


def _prctl_no_new_privileges_and_seccomp(result: dict[str, Any], target: Target) -> None:
    assert result["ok"], result
    assert result["value"] == [1, 2], "no_new_privs is set and a seccomp filter is in force"


def _sandbox_host_processes(target: Target) -> list[int]:
    """The host pids of every container of this agent (gvisor: the Sentry, the gofer and
    the ptrace stubs), read from their cgroups."""
    import subprocess

    out = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", "label=org.hyac.sandbox"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.split()
    pids: list[int] = []
    for container in out:
        inspect = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}} {{index .Config.Labels \"org.hyac.sandbox.run_dir\"}}",
             container], capture_output=True, text=True, timeout=30,
        ).stdout.split()
        # Another agent's container (tests run in parallel) may be gone since the listing.
        if len(inspect) != 2 or not inspect[1].startswith(str(target.agent.data_dir)):
            continue
        lines = Path(f"/proc/{inspect[0]}/cgroup").read_text().splitlines()
        v1 = any(line.split(":")[1] == "pids" for line in lines)
        cgroup = next(line.split(":", 2)[2] for line in lines
                      if line.split(":")[1] == ("pids" if v1 else ""))
        root = "/sys/fs/cgroup/pids" if v1 else "/sys/fs/cgroup"
        pids += [int(p) for p in Path(f"{root}{cgroup}/cgroup.procs").read_text().split()]
    assert pids, "the agent's sandboxes were found on the host"
    return pids


def _host_unaffected(field: str) -> Verdict:
    """gvisor: the call may succeed, on the Sentry's own bookkeeping; every host process
    of the sandboxes keeps ``field`` (nice, oom_score_adj) at 0 or above."""

    def check(result: dict[str, Any], target: Target) -> None:
        for pid in _sandbox_host_processes(target):
            if field == "nice":
                value = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
            else:
                value = int(Path(f"/proc/{pid}/oom_score_adj").read_text())
            assert value >= 0, (pid, field, value)

    return Verdict(check)


def _environ_holds_no_secret(result: dict[str, Any], target: Target) -> None:
    assert result["ok"], result  # the read itself is allowed: the sandbox's own environment
    text = result["value"]
    assert target.agent.token not in text
    for key in ("HYAC_DATA_DIR", "HYAC_DATABASE_URL", "HYAC_TOKEN", "HYAC_SECRET"):
        assert key not in text, key


def _kallsyms_hide_addresses(result: dict[str, Any], target: Target) -> None:
    if not result["ok"]:
        return  # unreadable is as good
    addresses = [line.split(" ", 1)[0] for line in result["value"].splitlines()[:-1]]
    assert addresses and all(int(a, 16) == 0 for a in addresses), addresses[:5]


def _suid_gains_nothing(result: dict[str, Any], target: Target) -> None:
    if result["ok"]:  # the bit may be set on one's own file; it must not give root
        assert result["value"] not in (0, -1), result
    else:
        assert "Errno" in result["error"], result


def _setuid_mount_refused(result: dict[str, Any], target: Target) -> None:
    assert result.get("value") != "mounted", result
    if result["ok"]:
        assert result["value"] == "no setuid mount binary"


def _fds_capped(result: dict[str, Any], target: Target) -> None:
    assert not result["ok"] and f"[Errno {errno.EMFILE}]" in result["error"], result
    opened = int(result["error"].rsplit("after ", 1)[1].split(" ")[0])
    assert 0 < opened <= 1024, opened


def _oom_score_kept(result: dict[str, Any], target: Target) -> None:
    if result["ok"]:
        assert result["value"] >= 0, f"the worker made itself unkillable: {result}"
    else:
        assert "Errno" in result["error"], result


VERDICTS: dict[str, Verdict] = {
    "io_uring_setup": refused(errno.EPERM),
    "io_uring_register": refused(errno.EPERM),
    "userfaultfd": refused(errno.EPERM),
    "perf_event_open": refused(errno.EPERM),
    "bpf": refused(errno.EPERM),
    "keyctl": refused(errno.EPERM),
    "add_key": refused(errno.EPERM),
    "request_key": refused(errno.EPERM),
    "ptrace_agent": refused(errno.EPERM, errno.ESRCH),
    "ptrace_sibling": refused(errno.EPERM),
    "process_vm_readv_sibling": refused(errno.EPERM),
    "kill_agent": refused(errno.EPERM, errno.ESRCH),
    "unshare_user": refused(errno.EPERM),
    "unshare_mount": refused(errno.EPERM),
    "unshare_net": refused(errno.EPERM),
    "clone_newuser": refused(errno.EPERM),
    "clone3": refused(errno.ENOSYS),
    "setns_user": refused(errno.EPERM, errno.EINVAL),
    "mount_proc": refused(errno.EPERM),
    "mount_bind_root": refused(errno.EPERM),
    "umount_code": refused(errno.EPERM),
    "pivot_root": refused(errno.EPERM),
    "chroot": refused(errno.EPERM),
    "fsopen": refused(errno.EPERM),
    "open_tree": refused(errno.EPERM),
    "kexec_load": refused(errno.EPERM),
    "kexec_file_load": refused(errno.EPERM),
    "init_module": refused(errno.EPERM),
    "finit_module": refused(errno.EPERM),
    "delete_module": refused(errno.EPERM),
    "open_by_handle_at": refused(errno.EPERM),
    "name_to_handle_at": refused(errno.EPERM),
    "proc_sys_core_pattern": failed_somehow(),
    "proc_sys_vm_drop_caches": failed_somehow(),
    "sysrq_trigger": failed_somehow(),
    "proc_1_root": failed_somehow(),
    "cgroup_write": failed_somehow(),
    "netlink_route_change": refused(errno.EPERM, errno.EACCES),
    "af_vsock": refused(errno.EPERM),
    "af_packet_dgram": refused(errno.EPERM),
    "raw_socket_tcp": refused(errno.EPERM),
    "host_abstract_socket": failed_somehow(),
    "cloud_metadata": failed_somehow(),
    "agent_port_ipv6": failed_somehow(),
    "environ": Verdict(_environ_holds_no_secret),
    "setuid_binary": Verdict(_setuid_mount_refused),
    "chmod_suid_in_tmp": Verdict(_suid_gains_nothing),
    "mknod_block_device": refused(errno.EPERM),
    "mknod_dev_mem": refused(errno.EPERM),
    "host_devices": failed_somehow(),
    "status": Verdict(_no_capabilities),
    "personality": refused(errno.EPERM),
    "tiocsti": failed_somehow(),
    "ioperm": refused(errno.EPERM),
    "iopl": refused(errno.EPERM),
    "clock_settime": refused(errno.EPERM),
    "settimeofday": refused(errno.EPERM),
    "clock_adjtime": refused(errno.EPERM),
    "swapon": refused(errno.EPERM),
    "reboot": refused(errno.EPERM),
    "acct": refused(errno.EPERM),
    "quotactl": refused(errno.EPERM),
    "syslog_read": refused(errno.EPERM),
    "kallsyms": Verdict(_kallsyms_hide_addresses),
    "fd_exhaustion": Verdict(_fds_capped),
    "raise_priority": refused(errno.EPERM, errno.EACCES),
    "realtime_scheduling": refused(errno.EPERM),
    "mlock": refused(errno.EPERM, errno.ENOMEM, errno.EAGAIN),
    "raise_file_size_limit": failed_somehow(),
    "unkillable_oom_score": Verdict(_oom_score_kept),
    "kcmp": refused(errno.EPERM),
    "lookup_dcookie": refused(errno.EPERM),
    "fanotify_init": refused(errno.EPERM),
    "pidfd_getfd": refused(errno.EPERM),
    "vhangup": refused(errno.EPERM),
    "sethostname_raw": refused(errno.EPERM),
    "prctl_status": Verdict(_prctl_no_new_privileges_and_seccomp),
}
# NoNewPrivs and the seccomp mode come from the same /proc/self/status read.
STATUS_CHECKS = {"no_new_privileges": _no_new_privileges}
# gVisor's answers where they differ: the Sentry is the kernel the function sees. Nodes it
# lets be made reach no device (ENXIO); nice and oom_score_adj are its own bookkeeping,
# checked on the host; calls it does not implement are ENOSYS or EINVAL; its status file
# has no NoNewPrivs or Seccomp line, so prctl says.
GVISOR_VERDICTS: dict[str, Verdict] = {
    "mknod_block_device": refused(errno.EPERM, errno.ENXIO),
    "mknod_dev_mem": refused(errno.EPERM, errno.ENXIO),
    "pidfd_getfd": refused(errno.EPERM, errno.ENOSYS),
    "realtime_scheduling": refused(errno.EPERM, errno.EINVAL),
    "raise_priority": _host_unaffected("nice"),
    "unkillable_oom_score": _host_unaffected("oom_score_adj"),
}


@dataclass
class Batch:
    target: Target
    nonce: str
    results: dict[str, dict[str, Any]]
    victim: str


@pytest.fixture(scope="session")
def batch(session_target: Target) -> Iterator[Batch]:
    if platform.machine() != "x86_64":
        pytest.skip("the probes use x86_64 system call numbers")
    target = session_target
    nonce = secrets.token_hex(8)
    victim = target.name("victim")
    target.agent.deploy(victim, "def main(context):\n    return 'victim alive'\n", tenant=VICTIM)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\0hyac-escape-" + nonce)  # a host service on an abstract socket
    listener.listen(5)
    try:
        answer = target.value(
            ATTEMPT + PROBES,
            query={
                "nonce": nonce,
                "agent_pid": str(target.agent.process.pid),
                "agent_port": target.agent.url.rsplit(":", 1)[1],
                "data_dir": str(target.agent.data_dir),
                "abstract": "hyac-escape-" + nonce,
            },
            timeout=60,
        )
    finally:
        listener.close()
    assert isinstance(answer, dict)
    yield Batch(target, nonce, answer, victim)


@pytest.fixture
def judged(batch: Batch) -> Iterator[Batch]:
    """The batch; afterwards the victim tenant's function still answers."""
    yield batch
    agent = batch.target.agent
    assert agent.process.poll() is None, "the agent died"
    answer = agent.invoke(batch.victim, tenant=VICTIM)
    assert answer.status_code == 200 and answer.json()["ok"], answer.text


@pytest.mark.parametrize("attack", sorted(VERDICTS))
def test_kernel_attack(judged: Batch, attack: str) -> None:
    result = judged.results[attack]
    assert result["marker"] == f"{judged.nonce}:{attack}", "the attack ran"
    verdicts = {**VERDICTS, **GVISOR_VERDICTS} if judged.target.backend == "gvisor" else VERDICTS
    verdicts[attack].check(result, judged.target)


@pytest.mark.parametrize("check", sorted(STATUS_CHECKS))
def test_process_status(judged: Batch, check: str) -> None:
    if judged.target.backend == "gvisor":
        # gVisor's status file has neither line: prctl_status checks the same two things.
        result = judged.results["prctl_status"]
        assert result["marker"] == f"{judged.nonce}:prctl_status", "prctl was asked"
        _prctl_no_new_privileges_and_seccomp(result, judged.target)
        return
    result = judged.results["status"]
    assert result["marker"] == f"{judged.nonce}:status", "the status was read"
    STATUS_CHECKS[check](result, judged.target)
