"""Micro benchmark of the Python worker's warm invoke path, without the agent.

Starts runtimes/python/bootstrap.py on one end of a socketpair (as the agent does), loads
an echo function and keeps C invocations in flight until N have been answered, then
prints requests/s. The worker and this driver are pinned to different CPUs when there
are two or more, so the figure is the worker's own cost per request.

    .venv/bin/python tests/python_worker/bench_bootstrap.py                 # sync+async, c1+c16
    .venv/bin/python tests/python_worker/bench_bootstrap.py --requests 50000 --rounds 5
    .venv/bin/python tests/python_worker/bench_bootstrap.py --runtime-dir /tmp/old/python

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RUNTIME = ROOT / "runtimes" / "python"
DEFAULT_PYTHON = Path("/root/.pyenv/versions/3.11.7/bin/python3.11")
SOURCES = {
    "sync": "def main(context):\n    return context.request.json()\n",
    "async": "async def main(context):\n    return context.request.json()\n",
}
BODY = b'{"hello": "world", "n": 42, "items": [1, 2, 3]}'
HEADER = struct.Struct(">I")


class Driver:
    def __init__(self, python: str, runtime_dir: Path, code_dir: Path, cpu: int | None) -> None:
        parent, child = socket.socketpair()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "HYAC_CODE_DIR": str(code_dir),
            "HYAC_CHANNEL_FD": str(child.fileno()),
        }
        preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        self.proc = subprocess.Popen(
            [python, "-I", "-B", str(runtime_dir / "bootstrap.py")],
            env=env,
            pass_fds=(child.fileno(),),
            preexec_fn=preexec,
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.sock = parent
        self.buf = bytearray()

    def send(self, message: dict) -> None:
        data = json.dumps(message).encode()
        self.sock.sendall(HEADER.pack(len(data)) + data)

    def frames(self):
        """Yield every complete frame received by one recv()."""
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("worker closed the channel")
        self.buf += chunk
        while len(self.buf) >= 4:
            (length,) = HEADER.unpack_from(self.buf)
            if len(self.buf) < 4 + length:
                break
            message = json.loads(bytes(self.buf[4 : 4 + length]))
            del self.buf[: 4 + length]
            yield message

    def init(self, code_dir: Path) -> None:
        function = {"tenant": "b", "name": "echo", "version": 1, "sha256": "", "runtime": "python"}
        self.send(
            {
                "type": "init",
                "function": function,
                "code_dir": str(code_dir),
                "entry": "echo.py",
                "handler": "main",
                "env": {},
                "timeout": 30.0,
            }
        )
        while True:
            for message in self.frames():
                if message["type"] == "ready":
                    return
                if message["type"] == "init_error":
                    raise RuntimeError(message)

    def run(self, requests: int, concurrency: int) -> float:
        """Answer ``requests`` invocations keeping ``concurrency`` in flight; req/s."""
        request = {
            "method": "POST",
            "path": "/",
            "query": {},
            "headers": {"content-type": "application/json"},
            "body_b64": base64.b64encode(BODY).decode(),
            "client_ip": "127.0.0.1",
        }
        # Pre-encode the frames: the driver's cost should not be what is measured.
        frames = []
        for i in range(requests):
            data = json.dumps(
                {"type": "invoke", "id": f"req_{i}", "request": request, "deadline": time.time() + 600}
            ).encode()
            frames.append(HEADER.pack(len(data)) + data)
        done = 0
        began = time.perf_counter()
        first = min(concurrency, requests)
        self.sock.sendall(b"".join(frames[:first]))
        sent = first
        while done < requests:
            answered = 0
            for message in self.frames():
                if message["type"] == "result":
                    if not message["ok"]:
                        raise RuntimeError(message)
                    answered += 1
            done += answered
            more = min(answered, requests - sent)
            if more:
                self.sock.sendall(b"".join(frames[sent : sent + more]))
                sent += more
        return requests / (time.perf_counter() - began)

    def close(self) -> None:
        self.send({"type": "shutdown"})
        self.proc.wait(timeout=10)
        self.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=str(DEFAULT_PYTHON))
    parser.add_argument("--runtime-dir", type=Path, default=DEFAULT_RUNTIME)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flavours", default="sync,async")
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    worker_cpu = cpus[0] if len(cpus) > 1 else None
    if worker_cpu is not None:
        os.sched_setaffinity(0, set(cpus[1:]))
    for flavour in args.flavours.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            code_dir = Path(tmp)
            (code_dir / "echo.py").write_text(SOURCES[flavour])
            driver = Driver(args.python, args.runtime_dir, code_dir, worker_cpu)
            try:
                driver.init(code_dir)
                driver.run(min(2000, args.requests), 16)  # warm up
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    rates = [driver.run(args.requests, concurrency) for _ in range(args.rounds)]
                    print(
                        f"{flavour:5} c{concurrency:<3} {statistics.median(rates):9.0f} req/s"
                        f"  (rounds: {', '.join(f'{r:.0f}' for r in rates)})",
                        flush=True,
                    )
            finally:
                driver.close()


if __name__ == "__main__":
    sys.exit(main())
