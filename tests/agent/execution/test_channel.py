"""The agent's side of a worker's channel: frames sent in one turn of the event loop leave
in one write (one wake-up of the worker for a burst), in order, and each answer still
reaches its own request."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from hyac_common.wire import InvokeRequest
from tests.in_process import InProcessAgent, in_process_agent

SOURCE = "def main(context):\n    return context.request.body.decode()\n"
BURST = 8


@pytest.fixture
def agent(tmp_path: Path) -> InProcessAgent:
    with in_process_agent(tmp_path / "data") as running:
        yield running


def test_a_burst_leaves_in_one_write_and_every_answer_finds_its_request(
    agent: InProcessAgent,
) -> None:
    agent.deploy("echo", SOURCE)
    warm = agent.invoke("echo")  # the worker is up: the burst below meets no start
    assert warm.status_code == 200 and warm.json()["ok"], warm.text
    (worker,) = agent.agent.pool._workers.values()
    writes: list[bytes] = []
    original = worker._writer.write

    def counted(data: bytes) -> None:
        writes.append(bytes(data))
        original(data)

    worker._writer.write = counted
    invoker = agent.agent.invoker

    async def burst() -> list[Any]:
        await asyncio.sleep(0)  # the burst starts at the top of a turn
        return await asyncio.gather(*(
            invoker.invoke("default", "echo", InvokeRequest(
                body_b64=base64.b64encode(f"call {i}".encode()).decode()))
            for i in range(BURST)
        ))

    # A burst whose invocations all reach the channel in one turn leaves in one write. On
    # a loaded host one may still be waiting on something else when the others go (a
    # slot of the worker's): another burst is tried, never more than three.
    split = []
    for _ in range(3):
        writes.clear()
        results = agent.run(burst())
        assert [base64.b64decode(r.body_b64).decode() for r in results] == [
            f"call {i}" for i in range(BURST)
        ]
        carrying = [w for w in writes if b'"invoke"' in w]
        if len(carrying) == 1:
            break
        split.append([w.count(b'"invoke"') for w in carrying])
    assert len(carrying) == 1, split
    frames = carrying[0]
    # in the order they were sent: call 0 first
    positions = [frames.index(base64.b64encode(f"call {i}".encode())) for i in range(BURST)]
    assert positions == sorted(positions)


def test_a_lone_request_leaves_in_the_turn_it_was_sent(agent: InProcessAgent) -> None:
    """Nothing else to run in the loop's turn: the frame is written at once, from the
    invocation's own step, not by a callback a turn later (each turn is a trip through
    the selector: a lone request's latency)."""
    agent.deploy("echo", SOURCE)
    assert agent.invoke("echo").status_code == 200
    (worker,) = agent.agent.pool._workers.values()
    writers: list[Any] = []
    original = worker._writer.write

    def counted(data: bytes) -> None:
        if b'"invoke"' in data:
            writers.append(asyncio.current_task())
        original(data)

    worker._writer.write = counted
    # Whether the loop had nothing else ready when each frame was sent: only then can it
    # leave at once (something else ready, e.g. a flush timer due on a loaded host, and it
    # leaves with that turn's other frames).
    alone: list[bool] = []
    send = worker._send

    def watched(message: Any) -> None:
        alone.append(not asyncio.get_running_loop()._ready)  # type: ignore[attr-defined]
        send(message)

    worker._send = watched  # type: ignore[method-assign]
    for _ in range(20):
        result = agent.run(agent.agent.invoker.invoke(
            "default", "echo", InvokeRequest(body_b64=base64.b64encode(b"alone").decode())))
        assert base64.b64decode(result.body_b64) == b"alone"
        if alone.count(True) >= 3:
            break
    assert len(writers) == len(alone) and alone.count(True) >= 3, alone
    for lone, task in zip(alone, writers, strict=True):
        if lone:
            assert task is not None, (alone, writers)  # written by the invocation itself


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


class _Ends:
    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.ends: list[Any] = []


def _protocol() -> tuple[Any, _Ends]:
    from hyac_agent.execution.channel import FrameProtocol

    ends = _Ends()
    return FrameProtocol(ends.frames.append, ends.ends.append), ends


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_frames_are_handed_on_whole_however_the_bytes_are_cut(chunk: int) -> None:
    protocol, ends = _protocol()
    stream = b"".join(_frame(b'{"type":"log","n":%d}' % i) for i in range(5))
    stream += _frame(b'{"type":"result","body":"' + b"x" * 10_000 + b'"}')
    for start in range(0, len(stream), chunk):
        protocol.data_received(stream[start:start + chunk])
    assert [f.get("n") for f in ends.frames[:5]] == [0, 1, 2, 3, 4]
    assert ends.frames[5]["type"] == "result" and len(ends.frames[5]["body"]) == 10_000
    assert ends.ends == []
    protocol.eof_received()
    assert ends.ends == [None]  # a clean end: nothing was left half read


@pytest.mark.parametrize(("data", "problem"), [
    (_frame(b"not json"), "not valid JSON"),
    (_frame(b"[1, 2]"), "JSON object with a 'type'"),
    (_frame(b'{"type": 3}'), "JSON object with a 'type'"),
    (_frame(b""), "not valid JSON"),
    ((64 * 1024 * 1024 + 1).to_bytes(4, "big") + b"{", "exceeds"),
])
def test_a_broken_frame_ends_the_channel_once(data: bytes, problem: str) -> None:
    protocol, ends = _protocol()
    protocol.data_received(_frame(b'{"type":"log"}') + data + _frame(b'{"type":"log"}'))
    # what came before the broken frame was handed on; nothing after it
    assert [f["type"] for f in ends.frames] == ["log"]
    (error,) = ends.ends
    assert problem in str(error)
    protocol.data_received(_frame(b'{"type":"log"}'))
    protocol.connection_lost(None)
    assert len(ends.frames) == 1 and len(ends.ends) == 1


def test_a_stream_that_stops_inside_a_frame_is_a_broken_frame() -> None:
    protocol, ends = _protocol()
    protocol.data_received(_frame(b'{"type":"log"}')[:-2])
    protocol.eof_received()
    (error,) = ends.ends
    assert "ended inside a frame" in str(error)


def test_a_frames_lone_surrogates_become_replacement_characters() -> None:
    """A worker runs the tenant's code and may write any frame: JSON lets it escape a
    lone surrogate, which no UTF-8 encoder takes (an answer, a task's error or a log
    batch holding it failed). Pairs stay the character they encode."""
    from hyac_agent.execution.channel import ProtocolError, decode_payload

    frame = decode_payload(
        b'{"type":"result","id":"r","error":{"message":"a\\ud800b\\uDFFF",'
        b'"traceback":["\\ud83d\\ude00"],"\\udc00key":1}}')
    assert frame == {"type": "result", "id": "r", "error": {
        "message": "a\ufffdb\ufffd", "traceback": ["\U0001f600"], "\ufffdkey": 1}}
    plain = b'{"type":"log","message":"no escape \\\\ud800 here"}'  # an escaped backslash
    assert decode_payload(plain)["message"] == "no escape \\ud800 here"
    deep = b'{"type":"log","m":' + b"[" * 900 + b'"\\ud800"' + b"]" * 900 + b"}"
    try:
        decoded = decode_payload(deep)
    except ProtocolError as exc:  # refused as a broken frame: the worker goes, not the agent
        assert "nested" in str(exc) or "JSON" in str(exc)
    else:
        inner = decoded["m"]
        while isinstance(inner, list):
            inner = inner[0]
        assert inner == "\ufffd"


RUNTIME_STOPPED_IT = '''
import json, struct, sys, time

def main(context):
    own = context.function.request_id
    data = json.dumps({"type": "result", "id": own, "ok": False, "error": {
        "type": "TimeoutError", "message": "stopped at its deadline", "code": "timeout"}}).encode()
    channel = sys.stdout._channel
    with channel._send_lock:
        channel._sock.sendall(struct.pack(">I", len(data)) + data)
    time.sleep(0.5)  # its real answer comes after: nobody waits for it any more
    return "late"
'''


def test_a_runtime_that_stopped_a_function_at_its_deadline_answers_a_timeout(
    agent: InProcessAgent,
) -> None:
    """python3.12-wasm's engine stops a guest at the deadline the agent sent and says so
    (code "timeout"): a 504 timeout, the same as when the agent's own timer is first,
    where it was a 200 with a TimeoutError when the engine noticed first. The worker is
    not drained for it: the runtime stopped the code itself."""
    agent.deploy("stopped", RUNTIME_STOPPED_IT, timeout=5)
    for _ in range(2):
        answer = agent.invoke("stopped")
        assert answer.status_code == 504, answer.text
        error = answer.json()["error"]
        assert error["code"] == "timeout" and "timed out after 5s" in error["message"], error
    assert len(agent.agent.pool._workers) == 1  # the same worker served both


RAW_HEADERS = '''
import json, struct, sys, time

def main(context):
    own = context.function.request_id
    data = json.dumps({"type": "result", "id": own, "ok": True, "response": {
        "status": 200, "body_b64": "",
        "headers": {"set-cookie": ["a=1", "b=2"], "x-list": ["p", 3], "x-n": 7}}}).encode()
    channel = sys.stdout._channel
    with channel._send_lock:
        channel._sock.sendall(struct.pack(">I", len(data)) + data)
    time.sleep(0.5)  # its real answer comes after: nobody waits for it any more
    return "late"
'''


def test_a_runtime_may_send_a_headers_values_as_a_list(agent: InProcessAgent) -> None:
    """A runtime of its own may frame several values of a header as a JSON list (the ones
    shipped join them before): Set-Cookie's become a line each, as the gateway sends them,
    any other's are joined by ", ", and a number is its text."""
    agent.deploy("raw", RAW_HEADERS, timeout=5)
    answer = agent.invoke("raw")
    assert answer.status_code == 200, answer.text
    assert answer.json()["headers"] == {"set-cookie": "a=1\nb=2", "x-list": "p, 3", "x-n": "7"}
    with agent.client() as client:
        served = client.get("/default/raw")
    assert served.status_code == 200, served.text
    assert served.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert served.headers["x-list"] == "p, 3" and served.headers["x-n"] == "7"
