"""A seccomp filter for sandboxed workers, compiled to classic BPF in pure Python.

No libseccomp bindings are needed (Debian ships them for the system interpreter only):
the filter is a short, fixed program. It checks the architecture, then answers EPERM
for the system calls a function has no business making — kernel modules, kexec, mount
and namespace changes, ptrace and friends, keyrings, bpf, perf, io_uring — and for
``socket(AF_PACKET, …)`` and raw sockets; ``clone`` with namespace flags is refused and
``clone3`` (whose flags live in memory a filter cannot read) answers ENOSYS, so libc falls
back to ``clone``. Everything else is allowed: the namespaces, capabilities and limits
are the boundary, the filter narrows the kernel surface behind them.

bubblewrap loads the program from a file descriptor (``--seccomp FD``) right before it
executes the worker.
"""

from __future__ import annotations

import errno
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

# Denied everywhere the call exists; numbers per architecture.
_DENIED_X86_64 = {
    "ptrace": 101, "mount": 165, "umount2": 166, "kexec_load": 246, "kexec_file_load": 320,
    "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248, "request_key": 249,
    "unshare": 272, "setns": 308, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "create_module": 174, "swapon": 167, "swapoff": 168, "reboot": 169,
    "pivot_root": 155, "chroot": 161, "acct": 163, "settimeofday": 164, "clock_settime": 227,
    "clock_adjtime": 305, "adjtimex": 159, "syslog": 103, "personality": 135,
    "process_vm_readv": 310, "process_vm_writev": 311, "userfaultfd": 323,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "lookup_dcookie": 212, "iopl": 172,
    "ioperm": 173, "quotactl": 179, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "kcmp": 312,
    "vhangup": 153, "nfsservctl": 180, "uselib": 134, "pidfd_getfd": 438,
    "fanotify_init": 300,
}
_DENIED_AARCH64 = {
    "ptrace": 117, "mount": 40, "umount2": 39, "kexec_load": 104, "kexec_file_load": 294,
    "bpf": 280, "perf_event_open": 241, "keyctl": 219, "add_key": 217, "request_key": 218,
    "unshare": 97, "setns": 268, "init_module": 105, "finit_module": 273,
    "delete_module": 106, "swapon": 224, "swapoff": 225, "reboot": 142, "pivot_root": 41,
    "chroot": 51, "acct": 89, "settimeofday": 170, "clock_settime": 112,
    "clock_adjtime": 266, "adjtimex": 171, "syslog": 116, "personality": 92,
    "process_vm_readv": 270, "process_vm_writev": 271, "userfaultfd": 282,
    "open_by_handle_at": 265, "name_to_handle_at": 264, "lookup_dcookie": 18,
    "quotactl": 60, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442, "kcmp": 272, "vhangup": 58, "nfsservctl": 42,
    "pidfd_getfd": 438, "fanotify_init": 262,
}
_TABLES = {
    "x86_64": (_DENIED_X86_64, {"socket": 41, "clone": 56, "clone3": 435}),
    "aarch64": (_DENIED_AARCH64, {"socket": 198, "clone": 220, "clone3": 435}),
}

AF_PACKET = 17
SOCK_RAW, SOCK_PACKET = 3, 10
SOCK_TYPE_MASK = 0xF
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NAMESPACE_FLAGS = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
    | 0x40000000 | 0x00000080
)
X32_SYSCALL_BIT = 0x40000000

#: the system calls the filter refuses (for `hyac-agent doctor` and the docs)
DENIED_SYSCALLS = sorted(_DENIED_X86_64)


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
    denied, special = _TABLES[machine]
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
        _insn(_JEQ_K, special["socket"], jt=0, jf=9),
        _insn(_LD_W_ABS, _arg_low(0)),
        _insn(_JEQ_K, AF_PACKET, jt=0, jf=1),
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
