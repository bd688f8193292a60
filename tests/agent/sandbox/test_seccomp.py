"""The pure-Python seccomp compiler: well-formed BPF that bubblewrap loads and that
denies what it says."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

import pytest

from hyac_agent.sandbox import seccomp


def decode(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("<HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_program_is_well_formed(machine: str) -> None:
    insns = decode(seccomp.build_filter(machine))
    assert 0 < len(insns) < 4096
    for index, (code, jt, jf, _k) in enumerate(insns):
        if code & 0x07 == 0x05:  # jumps stay inside the program
            assert index + 1 + max(jt, jf) < len(insns)
    assert insns[-1] == (0x06, 0, 0, seccomp.RET_ALLOW)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError):
        seccomp.build_filter("sparc")


@pytest.mark.skipif(shutil.which("bwrap") is None or seccomp.supported_machine() != "x86_64",
                    reason="needs bubblewrap on x86_64")
def test_filter_denies_under_bwrap() -> None:
    script = (
        "import ctypes, socket, threading\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"  # clone3 -> clone
        "print(libc.syscall(272, 0x10000000), ctypes.get_errno())\n"  # unshare
        "print(libc.syscall(101, 16, 1, 0, 0), ctypes.get_errno())\n"  # ptrace attach
        "try:\n    socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)\nexcept OSError as e:\n    print('raw', e.errno)\n"
    )
    fd = seccomp.filter_fd()
    try:
        result = subprocess.run(
            ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
             "--seccomp", str(fd), "--", sys.executable, "-c", script],
            pass_fds=(fd,), capture_output=True, text=True, timeout=30,
        )
    finally:
        os.close(fd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["-1 1", "-1 1", "raw 1"]


# The numbers in the table, against the kernel's own headers (linux-libc-dev).
HEADERS = {
    "x86_64": "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
    "aarch64": "/usr/include/asm-generic/unistd.h",
}


def header_numbers(path: str) -> dict[str, int]:
    import re

    numbers: dict[str, int] = {}
    with open(path) as fh:
        for line in fh:
            match = re.match(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\s*$", line)
            if match:
                numbers[match.group(1)] = int(match.group(2))
    return numbers


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_every_number_matches_the_kernel_headers(machine: str) -> None:
    if not os.path.exists(HEADERS[machine]):
        pytest.skip(f"{HEADERS[machine]} is absent (apt-get install linux-libc-dev)")
    known = header_numbers(HEADERS[machine])
    denied, special = seccomp.syscall_numbers(machine)
    checked = {**denied, **special}
    assert len(checked) > 50
    wrong = {name: (nr, known.get(name)) for name, nr in checked.items() if known.get(name) != nr}
    assert wrong == {}, f"(table, kernel) numbers differ: {wrong}"
    # and a call the table says does not exist on this architecture really does not
    absent = [name for name, nrs in seccomp.DENIED.items() if nrs[seccomp._COLUMN[machine]] is None]
    assert not [name for name in absent if name in known]


def test_docker_profile_refuses_what_the_filter_refuses() -> None:
    import json

    profile = json.loads(seccomp.docker_profile("x86_64"))
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert profile["architectures"] == ["SCMP_ARCH_X86_64"]  # i386 and x32 refused
    rules = profile["syscalls"]
    assert all(rule["action"] == "SCMP_ACT_ERRNO" for rule in rules)
    flat = {name for rule in rules if "args" not in rule for name in rule["names"]}
    assert flat == set(seccomp.DENIED_SYSCALLS) | {"clone3"}
    assert "io_uring_setup" in flat
    clone_bits = {rule["args"][0]["value"] for rule in rules if rule["names"] == ["clone"]}
    assert sum(clone_bits) == seccomp.CLONE_NAMESPACE_FLAGS
    socket_rules = [rule["args"][0] for rule in rules if rule["names"] == ["socket"]]
    assert {(a["index"], a["value"]) for a in socket_rules if a["op"] == "SCMP_CMP_EQ"} == {
        (0, seccomp.AF_PACKET), (0, seccomp.AF_VSOCK)}
