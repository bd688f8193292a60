"""HTTP load: ``wrk`` when installed, else a small asyncio keep-alive client. Both POST a
JSON body to 127.0.0.1 over C persistent connections for a fixed time and report
requests/s and latency percentiles. The load generator runs on its own CPU."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.harness import percentile, pinned


@dataclass
class Load:
    rps: float
    p50: float  # seconds
    p99: float
    requests: int
    errors: int
    tool: str
    #: what the errors were (the python client: statuses and the first error's body)
    error_detail: str = ""


def available_tool(preferred: str | None = None) -> str:
    if preferred:
        return preferred
    return "wrk" if shutil.which("wrk") else "python"


def run_load(
    urls: list[str], body: bytes, connections: int, duration: float, cpus: set[int], tool: str
) -> Load:
    for url in urls:
        if urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"load is only ever sent to 127.0.0.1, not {url}")
    if tool == "wrk":
        return _wrk(urls, body, connections, duration, cpus)
    return _python(urls, body, connections, duration, cpus)


# wrk -----------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
local paths = {{{paths}}}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
"""
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _wrk(urls: list[str], body: bytes, connections: int, duration: float, cpus: set[int]) -> Load:
    parts = urlsplit(urls[0])
    paths = ", ".join(_lua_string(urlsplit(u).path or "/") for u in urls)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT.format(body=_lua_string(body.decode()), paths=paths))
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
             "--timeout", "10s", "-s", script.name, f"{parts.scheme}://{parts.netloc}/"],
            capture_output=True, text=True, timeout=duration + 60, preexec_fn=pinned(cpus),
        )
    finally:
        Path(script.name).unlink(missing_ok=True)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr or out.stdout}")
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors += sum(int(g) for g in match.groups())
    return Load(rps, p50, p99, requests, errors, "wrk")


# the asyncio client --------------------------------------------------------------------


def _python(urls: list[str], body: bytes, connections: int, duration: float, cpus: set[int]) -> Load:
    """Run the client in a child pinned to the load CPU, like wrk."""
    import json
    import sys

    code = (
        "import json, sys; from benchmarks.loadgen import _python_main; "
        "print(json.dumps(_python_main(*json.loads(sys.argv[1]))))"
    )
    args = json.dumps([urls, body.decode(), connections, duration])
    out = subprocess.run(
        [sys.executable, "-c", code, args], capture_output=True, text=True,
        timeout=duration + 60, preexec_fn=pinned(cpus), cwd=Path(__file__).resolve().parent.parent,
    )
    if out.returncode != 0:
        raise RuntimeError(f"python load generator failed: {out.stderr[-2000:]}")
    data = json.loads(out.stdout.splitlines()[-1])
    return Load(**data, tool="python")


def _python_main(urls: list[str], body: str, connections: int, duration: float) -> dict[str, float]:
    with __import__("contextlib").suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(_drive(urls, body.encode(), connections, duration))


async def _drive(urls: list[str], body: bytes, connections: int, duration: float) -> dict[str, float]:
    parts = urlsplit(urls[0])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [
        (f"POST {urlsplit(u).path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        for u in urls
    ]
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    first_error = b""
    stop_at = time.perf_counter() + duration

    async def connection(offset: int) -> None:
        nonlocal errors, first_error
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                writer.write(requests[i % len(requests)])
                i += 1
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                chunked = False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                    elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                data = b""
                if chunked:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        data += (await reader.readexactly(size + 2))[:size]
                        if size == 0:
                            break
                else:
                    data = await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if status >= 400:
                    errors += 1
                    statuses[status] = statuses.get(status, 0) + 1
                    first_error = first_error or data[:300] or b"(no body)"
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(i) for i in range(connections)))
    elapsed = time.perf_counter() - started
    if not latencies:
        raise RuntimeError("no request completed")
    return {
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "requests": len(latencies),
        "errors": errors,
        "error_detail": f"statuses {statuses}, the first: {first_error.decode(errors='replace')}"
                        if errors else "",
    }
