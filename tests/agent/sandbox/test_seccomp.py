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
