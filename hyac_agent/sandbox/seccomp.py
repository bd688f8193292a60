"""A seccomp filter for sandboxed workers, compiled to classic BPF in pure Python.

No libseccomp bindings are needed (Debian ships them for the system interpreter only):
the filter is a short, fixed program. It checks the architecture, then answers EPERM
for the system calls a function has no business making — kernel modules, kexec, mount
and namespace changes, ptrace and friends, keyrings, bpf, perf, io_uring — and for
``socket(AF_PACKET, …)``, ``socket(AF_VSOCK, …)`` and raw sockets; ``clone`` with
namespace flags is refused and ``clone3`` (whose flags live in memory a filter cannot
read) answers ENOSYS, so libc falls back to ``clone``. Everything else is allowed: the
namespaces, capabilities and limits are the boundary, the filter narrows the kernel
surface behind them.

bubblewrap loads the program from a file descriptor (``--seccomp FD``) right before it
executes the worker. The Docker backend gets the same rules as a seccomp profile
(``docker_profile``), generated from the same table, in place of Docker's default.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import struct
import tempfile

# struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6] (little-endian hosts only)
_OFF_NR, _OFF_ARCH = 0, 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index


_LD_W_ABS = 0x20
_ALU_AND_K = 0x54
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

_ARCHES = {
    # machine: (AUDIT_ARCH_*, syscall table)
    "x86_64": 0xC000003E,
    "aarch64": 0xC00000B7,
}

# THE list: every system call Hyac's sandboxes refuse, with its number on x86_64 and on
# aarch64 (None: the call does not exist there). bubblewrap's BPF program and Docker's
# JSON profile are both generated from it; a test checks the numbers against the kernel
# headers.
DENIED: dict[str, tuple[int, int | None]] = {
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "kcmp": (312, 272), "pidfd_getfd": (438, 438),
    "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41), "chroot": (161, 51),
    "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430),
    "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "unshare": (272, 97), "setns": (308, 268),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294), "init_module": (175, 105),
    "finit_module": (313, 273), "delete_module": (176, 106), "create_module": (174, None),
    "get_kernel_syms": (177, None), "query_module": (178, None),
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "swapon": (167, 224), "swapoff": (168, 225), "reboot": (169, 142), "acct": (163, 89),
    "quotactl": (179, 60), "syslog": (103, 116), "vhangup": (153, 58),
    "settimeofday": (164, 170), "clock_settime": (227, 112), "clock_adjtime": (305, 266),
    "adjtimex": (159, 171), "sethostname": (170, 161), "setdomainname": (171, 162),
    "personality": (135, 92), "iopl": (172, None), "ioperm": (173, None),
    "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264),
    "lookup_dcookie": (212, 18), "fanotify_init": (300, 262), "nfsservctl": (180, 42),
    "uselib": (134, None), "_sysctl": (156, None), "sysfs": (139, None), "ustat": (136, None),
    "afs_syscall": (183, None), "tuxcall": (184, None), "security": (185, None),
    "vserver": (236, None), "getpmsg": (181, None), "putpmsg": (182, None),
}
# Checked by argument rather than refused outright.
_SPECIAL: dict[str, tuple[int, int]] = {"socket": (41, 198), "clone": (56, 220), "clone3": (435, 435)}
_COLUMN = {"x86_64": 0, "aarch64": 1}


def syscall_numbers(machine: str) -> tuple[dict[str, int], dict[str, int]]:
    """(denied name → number, argument-checked name → number) on ``machine``."""
    column = _COLUMN[machine]
    denied: dict[str, int] = {}
    for name, numbers in DENIED.items():
        number = numbers[column]
        if number is not None:
            denied[name] = number
    return denied, {name: numbers[column] for name, numbers in _SPECIAL.items()}


AF_PACKET = 17
AF_VSOCK = 40
SOCK_RAW, SOCK_PACKET = 3, 10
SOCK_TYPE_MASK = 0xF
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
_CLONE_NAMESPACE_BITS = (
    0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
    0x00000080,
)
CLONE_NAMESPACE_FLAGS = sum(_CLONE_NAMESPACE_BITS)
X32_SYSCALL_BIT = 0x40000000

#: the system calls the filter refuses (for `hyac-agent doctor` and the docs)
DENIED_SYSCALLS = sorted(DENIED)


def _insn(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


def supported_machine() -> str | None:
    machine = platform.machine()
    return machine if machine in _ARCHES else None


def build_filter(machine: str | None = None) -> bytes:
    """The filter as raw ``struct sock_filter`` instructions (what bwrap --seccomp reads)."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise ValueError(f"no seccomp filter for architecture {machine!r}")
    denied, special = syscall_numbers(machine)
    deny = _insn(_RET_K, _RET_ERRNO | errno.EPERM)
    prog: list[bytes] = [
        _insn(_LD_W_ABS, _OFF_ARCH),
        _insn(_JEQ_K, _ARCHES[machine], jt=1, jf=0),
        deny,  # a foreign ABI (i386 on x86_64): nothing is allowed through it
        _insn(_LD_W_ABS, _OFF_NR),
    ]
    if machine == "x86_64":
        prog += [_insn(_JGE_K, X32_SYSCALL_BIT, jt=0, jf=1), deny]
    for number in sorted(denied.values()):
        prog += [_insn(_JEQ_K, number, jt=0, jf=1), deny]
    prog += [
        _insn(_JEQ_K, special["clone3"], jt=0, jf=1),
        _insn(_RET_K, _RET_ERRNO | errno.ENOSYS),
    ]
    # clone(flags, …): flags are the first argument on both architectures.
    prog += [
        _insn(_JEQ_K, special["clone"], jt=0, jf=4),
        _insn(_LD_W_ABS, _arg_low(0)),
        _insn(_JSET_K, CLONE_NAMESPACE_FLAGS, jt=0, jf=1),
        deny,
        _insn(_RET_K, RET_ALLOW),
    ]
    # socket(domain, type, protocol): no packet sockets, no raw sockets.
    prog += [
        _insn(_JEQ_K, special["socket"], jt=0, jf=10),
        _insn(_LD_W_ABS, _arg_low(0)),
        _insn(_JEQ_K, AF_PACKET, jt=1, jf=0),
        _insn(_JEQ_K, AF_VSOCK, jt=0, jf=1),
        deny,
        _insn(_LD_W_ABS, _arg_low(1)),
        _insn(_ALU_AND_K, SOCK_TYPE_MASK),
        _insn(_JEQ_K, SOCK_RAW, jt=1, jf=0),
        _insn(_JEQ_K, SOCK_PACKET, jt=0, jf=1),
        deny,
        _insn(_RET_K, RET_ALLOW),
    ]
    prog.append(_insn(_RET_K, RET_ALLOW))
    return b"".join(prog)


def filter_fd(machine: str | None = None) -> int:
    """A readable fd positioned at the start of the compiled filter; the caller closes it."""
    program = build_filter(machine)
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("hyac-seccomp", 0)  # close-on-exec; pass it with pass_fds
    else:  # pragma: no cover - Linux always has memfd_create
        fd, path = tempfile.mkstemp(prefix="hyac-seccomp-")
        os.unlink(path)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


_DOCKER_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


def _errno_rule(names: list[str], err: int, *args: dict[str, int | str]) -> dict[str, object]:
    rule: dict[str, object] = {"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": err}
    if args:
        rule["args"] = list(args)
    return rule


def _masked(index: int, mask: int, value: int) -> dict[str, int | str]:
    """Argument ``index`` matches when ``arg & mask == value``."""
    return {"index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}


def docker_profile(machine: str | None = None) -> str:
    """The filter as a Docker seccomp profile (JSON): allow by default, refuse what the
    BPF program refuses. Only the native architecture is listed: the allow-all default
    covers no foreign ABI (i386, x32), which libseccomp answers with its bad-arch action."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise ValueError(f"no seccomp filter for architecture {machine!r}")
    denied, _special = syscall_numbers(machine)
    rules = [
        _errno_rule(sorted(denied), errno.EPERM),
        _errno_rule(["clone3"], errno.ENOSYS),
        # libseccomp compares arguments for equality only: one rule per namespace flag.
        *(_errno_rule(["clone"], errno.EPERM, _masked(0, bit, bit))
          for bit in _CLONE_NAMESPACE_BITS),
        _errno_rule(["socket"], errno.EPERM, {"index": 0, "value": AF_PACKET, "op": "SCMP_CMP_EQ"}),
        _errno_rule(["socket"], errno.EPERM, {"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_EQ"}),
        _errno_rule(["socket"], errno.EPERM, _masked(1, SOCK_TYPE_MASK, SOCK_RAW)),
        _errno_rule(["socket"], errno.EPERM, _masked(1, SOCK_TYPE_MASK, SOCK_PACKET)),
    ]
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [_DOCKER_ARCH[machine]],
        "syscalls": rules,
    }
    return json.dumps(profile, separators=(",", ":"))
