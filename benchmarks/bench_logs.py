"""5. Log latency: from a function's ``print`` to the line arriving at a consumer of the
live stream (``GET /v1/logs/stream``, server-sent events, what ``hyac logs -f`` reads).

The function prints ``time.time()``; the consumer compares it with its own clock on
receipt (the sandbox shares the host's clock). Target: p50 under 50 ms. The same-run
baseline is the round trip of the invocation that printed the line (gateway, worker and
back), so the ratio says how much later than the answer the log line arrives.
"""

from __future__ import annotations

import asyncio
import json
import time

from benchmarks.harness import Context, Figure, deploy, figure, median, percentile, running_agent

SOURCE = """import time

def main(context):
    print('bench-ts', repr(time.time()))
    return {'ok': True}
"""


async def measure(
    agent_url: str, gateway: str, headers: dict[str, str], samples: int
) -> dict[str, list[float]]:
    import httpx

    latencies: list[float] = []
    to_agent: list[float] = []
    round_trips: list[float] = []
    received = asyncio.Event()
    connected = asyncio.Event()

    async def consume(client: httpx.AsyncClient) -> None:
        async with client.stream("GET", f"{agent_url}/v1/logs/stream", params={"function": "printer"},
                                 headers=headers, timeout=None) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                now = time.time()
                if line.startswith(": connected"):
                    connected.set()
                if not line.startswith("data: "):
                    continue
                record = json.loads(line[6:])
                message = record["message"]
                if message.startswith("bench-ts "):
                    printed = float(message.split()[1])
                    latencies.append(now - printed)
                    to_agent.append(record["ts"] - printed)
                    received.set()

    async with httpx.AsyncClient(timeout=60) as client:
        consumer = asyncio.create_task(consume(client))
        try:
            await asyncio.wait_for(connected.wait(), 30)
            for _ in range(samples):
                received.clear()
                started = time.perf_counter()
                response = await client.post(gateway)
                round_trips.append(time.perf_counter() - started)
                response.raise_for_status()
                await asyncio.wait_for(received.wait(), 10)
                await asyncio.sleep(0.02)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    return {"latency": latencies, "to_agent": to_agent, "round_trip": round_trips}


def run(ctx: Context) -> list[Figure]:
    samples = ctx.pick(20, 300)
    with running_agent(ctx, "logs") as agent:
        deploy(agent, "printer", SOURCE)
        gateway = agent.gateway("printer")
        asyncio.run(measure(agent.url, gateway, agent.headers, 3))  # warm the worker
        data = asyncio.run(measure(agent.url, gateway, agent.headers, samples))
    latency = data["latency"]
    p50 = median(latency)
    result = figure(
        "logs.p50", "print → log stream p50", p50, "s", median(data["round_trip"]),
        "the printing invocation's round trip (p50)",
        samples=len(latency), p99=percentile(latency, 99), max=max(latency),
        print_to_agent_p50=median(data["to_agent"]),
    )
    result.target, result.met = "p50 < 50 ms", p50 < 0.050
    return [result]
