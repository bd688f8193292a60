"""The host side of the ``python3.12-wasm`` runtime: embeds wasmtime, runs the guest.

Started like any worker (inside the agent's sandbox backend, for defence in depth) by
the ``hyac-wasm-host`` launcher that scripts/setup-wasm.sh writes: a host Python with
the ``wasmtime`` package in ``HYAC_WASM_HOME/site`` and the CPython WASI build, pinned
by sha256, in ``HYAC_WASM_HOME``. It speaks docs/protocol.md to the agent on its channel
and relays every frame to and from ``wasm_guest.py``, which runs inside one WebAssembly
instance over WASI stdin/stdout. The guest gets no syscalls, only what WASI grants:
read-only preopens of its code (``/code``), its dependencies (``/deps``) and the guest
runtime (``/runtime``); no network, no processes, no other files; an environment of its
own. The engine caps its memory (a store limit) and stops it at the invocation's
deadline (epoch interruption).

One instance serves one function version for the worker's life (a warm instance); it is
never shared: a worker belongs to one tenant's function version.

``wasm_host.py --precompile`` compiles the module once and writes the compiled artefact
(``python-portable.cwasm``) beside it; workers deserialize it instead of compiling (about
7 s). It is compiled for a CPU level every backend offers (x86-64-v2 on x86_64), not for
the host's own CPU: gVisor hides CPU features newer than it knows, and code compiled for
them would not load there.
``wasm_host.py --check`` prints the versions and exits non-zero when something is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time
from typing import Any

RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
HOME = os.environ.get("HYAC_WASM_HOME", "")
if HOME and os.path.join(HOME, "site") not in sys.path:
    sys.path.insert(0, os.path.join(HOME, "site"))
if RUNTIME_DIR not in sys.path:
    sys.path.insert(0, RUNTIME_DIR)

import _hyac_worker  # noqa: E402
from _hyac_protocol import (  # noqa: E402
    OUT_OF_MEMORY,
    PROTOCOL_VERSION,
    TIMED_OUT,
    Channel,
    FrameBuffer,
    ProtocolError,
    die,
)

#: the CPython WASI build this runtime is made for (scripts/setup-wasm.sh pins it too)
WASM_FILE = "python-3.12.0.wasm"
WASM_SHA256 = "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763"
COMPILED_FILE = "python-portable.cwasm"
#: the code generator's target and the CPU features it may use, per machine: a level every
#: backend offers (gVisor's CPUID leaves out features newer than it knows). Other
#: machines compile for the host itself.
PORTABLE_TARGETS = {
    "x86_64": ("x86_64-unknown-linux-gnu", ("has_sse3", "has_ssse3", "has_sse41", "has_sse42",
                                           "has_popcnt")),
    "aarch64": ("aarch64-unknown-linux-gnu", ()),
}
GUEST_ARGV = ["python3.12", "-I", "-B", "/runtime/wasm_guest.py"]
#: what the host process itself needs beside the guest's memory (Python, wasmtime, code)
HOST_OVERHEAD = 96 * 1024 * 1024
MIN_GUEST_MEMORY = 48 * 1024 * 1024
#: address space reserved for the guest's linear memory (runtimes/python-wasm/runtime.toml)
MEMORY_RESERVATION = 1024 * 1024 * 1024
DEFAULT_MEMORY = 256 * 1024 * 1024
#: slack past a deadline before the watcher looks again
TICK = 0.02
#: glibc malloc arenas the worker host may make (mallopt M_ARENA_MAX)
MALLOC_ARENAS = 2
EXIT_OK, EXIT_PROTOCOL_ERROR, EXIT_BROKEN = 0, 2, 3


def limit_malloc_arenas() -> None:
    """At most MALLOC_ARENAS arenas, set before any thread starts. Each thread (the engine's
    runtime starts several) would otherwise get an arena reserving 64 MiB of address space
    it never touches: under the sandbox's rlimit fallback, whose address-space cap leaves
    512 MiB above the memory quota for such reservations, they took all of it, and a
    192 MiB function could not grow its guest's memory by 16 MiB."""
    import ctypes

    m_arena_max = -8  # malloc.h
    try:
        ctypes.CDLL(None).mallopt(m_arena_max, MALLOC_ARENAS)
    except (OSError, AttributeError):  # a libc without mallopt has no such arenas
        pass


def _wasmtime() -> Any:
    try:
        import wasmtime
    except ImportError as exc:
        die(EXIT_BROKEN, f"python3.12-wasm: the wasmtime package is missing ({exc}); "
                         "run scripts/setup-wasm.sh")
    return wasmtime


def make_engine(wasmtime: Any) -> Any:
    """The engine every worker uses; the compiled artefact must come from the same."""
    config = wasmtime.Config()
    config.epoch_interruption = True
    # The guest's memory grows in place inside one reservation of address space (not
    # memory: nothing is touched until the guest uses it) as large as a guest's cap gets.
    # Without it each growth past a small reservation moved the memory, old and new
    # copies resident together: a 192 MiB function's worker peaked at 181 MiB while
    # holding 135, and under load the sandbox killed it before the engine's cap turned
    # the guest's growth into its own MemoryError. The runtime declares the reservation
    # (runtime.toml's [rlimits] reserved_mb) for the rlimit fallback's address-space cap;
    # a guest larger than it still grows, by moving.
    config.memory_reservation = MEMORY_RESERVATION
    config.memory_guard_size = 64 * 1024
    config.memory_reservation_for_growth = 16 * 1024 * 1024
    config.memory_may_move = True
    portable = PORTABLE_TARGETS.get(os.uname().machine)
    if portable is not None:
        config.target = portable[0]
        for flag in portable[1]:
            config.cranelift_flag_enable(flag)
    return wasmtime.Engine(config)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_module(wasmtime: Any, engine: Any, home: str) -> Any:
    """The compiled module: the precompiled artefact when it fits this engine, else
    compiled now from the pinned build (slow: a few seconds)."""
    compiled = os.path.join(home, COMPILED_FILE)
    if os.path.exists(compiled):
        try:
            return wasmtime.Module.deserialize_file(engine, compiled)
        except Exception as exc:  # another wasmtime version or engine setting
            os.write(2, f"python3.12-wasm: compiling, {compiled} does not fit: {exc}\n".encode())
    source = os.path.join(home, WASM_FILE)
    if sha256_of(source) != WASM_SHA256:
        die(EXIT_BROKEN, f"python3.12-wasm: {source} does not have the pinned sha256")
    return wasmtime.Module.from_file(engine, source)


def guest_memory_limit() -> int:
    """The guest's linear-memory cap: the sandbox's memory less the host's own share."""
    try:
        total = int(os.environ.get("HYAC_MEMORY_BYTES") or DEFAULT_MEMORY)
    except ValueError:
        total = DEFAULT_MEMORY
    return max(total - HOST_OVERHEAD, MIN_GUEST_MEMORY)


class Host:
    """One guest instance and the relay between it and the agent's channel."""

    def __init__(self, wasmtime: Any, engine: Any, module: Any, channel: Channel) -> None:
        self.wasmtime = wasmtime
        self.engine = engine
        self.module = module
        self.channel = channel
        #: invocations sent to the guest and not yet answered: id -> deadline, in order
        self.running: dict[str, float] = {}
        #: guards ``running``; told when an invocation starts and when the guest ends
        self.lock = threading.Condition()
        self.frames = FrameBuffer()
        self.timed_out: str | None = None
        self.stdin_r, self.stdin_w = os.pipe()
        self.done = threading.Event()
        self.exit_code = EXIT_OK

    # -- the guest -----------------------------------------------------------------

    def configure(self) -> Any:
        wasmtime = self.wasmtime
        code_dir = os.environ.get("HYAC_CODE_DIR", "")
        wasi = wasmtime.WasiConfig()
        wasi.argv = GUEST_ARGV
        wasi.env = [("HOME", "/tmp"), ("LANG", "C.UTF-8"), ("PYTHONDONTWRITEBYTECODE", "1"),
                    ("HYAC_CODE_DIR", "/code")]
        wasi.stdin_file = f"/proc/self/fd/{self.stdin_r}"
        wasi.stdout_custom = self.from_guest
        wasi.stderr_custom = _to_stderr
        wasi.preopen_dir(RUNTIME_DIR, "/runtime", False)
        wasi.preopen_dir(code_dir, "/code", False)
        deps = os.environ.get("HYAC_WASM_DEPS", "")
        if deps and os.path.isdir(deps):
            wasi.preopen_dir(deps, "/deps", False)
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=guest_memory_limit())
        store.set_wasi(wasi)
        store.set_epoch_deadline(1)  # the first tick of the epoch stops the guest
        return store

    def run_guest(self) -> None:
        """Guest thread: run the instance until it exits, traps or is stopped."""
        wasmtime = self.wasmtime
        try:
            store = self.configure()
            linker = wasmtime.Linker(self.engine)
            linker.define_wasi()  # WASI only: the guest imports nothing else
            instance = linker.instantiate(store, self.module)
            instance.exports(store)["_start"](store)
        except wasmtime.ExitTrap as exc:
            self.exit_code = exc.code
        except wasmtime.Trap as exc:
            self.fail_running(exc)
            self.exit_code = EXIT_OK if self.timed_out else EXIT_BROKEN
        except Exception as exc:  # the instance could not be made
            os.write(2, f"python3.12-wasm: the guest did not start: {exc}\n".encode())
            self.exit_code = EXIT_BROKEN
        with self.lock:
            self.done.set()
            self.lock.notify_all()

    def fail_running(self, trap: Exception) -> None:
        """Answer the invocations the stopped instance held."""
        with self.lock:
            running = list(self.running)
            self.running.clear()
        for request_id in running:
            if request_id == self.timed_out:
                error = {"type": "TimeoutError", "traceback": "", "code": TIMED_OUT,
                         "message": "hyac: the function ran past its deadline and the "
                                    "WebAssembly engine stopped it"}
            elif "memory" in str(trap) or "unreachable" in str(trap):
                error = {"type": "MemoryError", "traceback": "", "code": OUT_OF_MEMORY,
                         "message": "hyac: the function ran out of memory in the WebAssembly engine"}
            else:
                error = {"type": "RuntimeError", "traceback": "",
                         "message": f"hyac: the WebAssembly instance stopped: {trap}"}
            self.channel.send({"type": "result", "id": request_id, "ok": False, "error": error})

    def from_guest(self, data: bytes) -> None:
        """What the guest writes on stdout: frames for the agent."""
        try:
            messages = self.frames.feed(bytes(data))
        except ProtocolError as exc:
            die(EXIT_PROTOCOL_ERROR, f"python3.12-wasm guest broke the protocol: {exc}")
        for message in messages:
            if message.get("type") == "result":
                with self.lock:
                    self.running.pop(str(message.get("id")), None)
            self.channel.send(message)

    # -- the agent -----------------------------------------------------------------

    def to_guest(self, message: dict[str, Any]) -> None:
        if message.get("type") == "invoke":
            deadline = message.get("deadline")
            with self.lock:
                self.running[str(message.get("id"))] = (
                    float(deadline) if isinstance(deadline, (int, float)) else time.time() + 30
                )
                self.lock.notify_all()
        data = memoryview(_encode(message))
        while data:
            data = data[os.write(self.stdin_w, data):]

    def watch_deadlines(self) -> None:
        """Deadline thread: stop the instance when the invocation it runs overruns."""
        with self.lock:
            while not self.done.is_set():
                # The guest runs invocations in the order they came: the first is running.
                head = next(iter(self.running.items()), None)
                if head is None:
                    self.lock.wait()
                    continue
                left = head[1] - time.time()
                if left > 0:
                    self.lock.wait(left + TICK)
                    continue
                self.timed_out = head[0]
                self.engine.increment_epoch()
                return

    def serve(self) -> int:
        """Start the guest at once (a generic worker of the pool is warm up to the user's
        code: CPython and the runtime load while the agent picks a function), then relay."""
        threading.Thread(target=self.run_guest, name="guest", daemon=True).start()
        try:
            init = _hyac_worker.read_init(self.channel)
        except ProtocolError as exc:
            die(EXIT_PROTOCOL_ERROR, f"protocol error: {exc}")
        self.to_guest(dict(init, code_dir="/code"))  # the guest's own path of its code
        threading.Thread(target=self.watch_deadlines, name="deadlines", daemon=True).start()
        threading.Thread(target=self.read_agent, name="agent", daemon=True).start()
        self.done.wait()
        return self.exit_code

    def read_agent(self) -> None:
        try:
            while True:
                message = self.channel.read_frame()
                if message is None:
                    break
                self.to_guest(message)
        except (OSError, ProtocolError) as exc:
            os.write(2, f"python3.12-wasm: channel: {exc}\n".encode())
        with contextlib.suppress(OSError):
            os.close(self.stdin_w)  # the guest reads the end, and leaves
        if not self.done.wait(5):
            die(EXIT_OK)


def _encode(message: dict[str, Any]) -> bytes:
    from _hyac_protocol import encode_frame

    return encode_frame(message)


def _to_stderr(data: bytes) -> None:
    try:
        os.write(2, bytes(data))
    except OSError:
        pass


def precompile(home: str) -> None:
    wasmtime = _wasmtime()
    source = os.path.join(home, WASM_FILE)
    if sha256_of(source) != WASM_SHA256:
        die(EXIT_BROKEN, f"{source} does not have the pinned sha256 {WASM_SHA256}")
    module = wasmtime.Module.from_file(make_engine(wasmtime), source)
    target = os.path.join(home, COMPILED_FILE)
    with open(target + ".tmp", "wb") as fh:
        fh.write(module.serialize())
    os.replace(target + ".tmp", target)


def check(home: str) -> None:
    wasmtime = _wasmtime()
    source = os.path.join(home, WASM_FILE)
    if not os.path.exists(source):
        die(EXIT_BROKEN, f"python3.12-wasm: {source} is missing; run scripts/setup-wasm.sh")
    try:
        wasmtime.Module.deserialize_file(make_engine(wasmtime), os.path.join(home, COMPILED_FILE))
    except Exception as exc:
        die(EXIT_BROKEN, f"python3.12-wasm: no usable {COMPILED_FILE} ({exc}); run scripts/setup-wasm.sh")
    compiled = "precompiled"
    version = getattr(wasmtime, "__version__", "") or _dist_version()
    print(f"hyac-wasm-host python 3.12.0 (wasi) wasmtime {version} {compiled} "
          f"protocol {PROTOCOL_VERSION}")


def _dist_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return "?"


def main() -> None:
    if not HOME:
        die(EXIT_BROKEN, "python3.12-wasm: HYAC_WASM_HOME is not set (start through hyac-wasm-host)")
    if sys.argv[1:2] == ["--precompile"]:
        precompile(HOME)
        return
    if sys.argv[1:2] == ["--check"]:
        check(HOME)
        return
    limit_malloc_arenas()
    wasmtime = _wasmtime()
    if not os.path.isdir(os.environ.get("HYAC_CODE_DIR", "")):
        die(EXIT_PROTOCOL_ERROR, "python3.12-wasm: HYAC_CODE_DIR does not name the code directory")
    channel = _hyac_worker.open_channel()
    engine = make_engine(wasmtime)
    host = Host(wasmtime, engine, load_module(wasmtime, engine, HOME), channel)
    code = host.serve()
    # Straight out: the engine's threads must not be torn down by interpreter finalisation.
    die(code)


if __name__ == "__main__":
    main()
