"""A real Prometheus (Debian's ``prometheus``) scrapes the agent's /metrics with the
scrape token every second, and a PromQL query over its HTTP API returns the number of
invocations this test made."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningAgent, start_agent

SCRAPE_TOKEN = "hyac-scrape-test-token"
INVOCATIONS = 5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def scraped_agent(tmp_path: Path) -> Iterator[RunningAgent]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    running = start_agent(tmp_path / "data", "--sandbox", "bwrap",
                          env={"HYAC_METRICS_TOKEN": SCRAPE_TOKEN})
    yield running
    running.kill(signal.SIGTERM)


@pytest.fixture
def prometheus(tmp_path: Path, scraped_agent: RunningAgent) -> Iterator[str]:
    """Prometheus on a free loopback port scraping ``scraped_agent``; its API's URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed: apt-get install prometheus "
                    "(scripts/services.sh installs it as root on Debian)")
    target = scraped_agent.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: hyac\n    metrics_path: /metrics\n"
        f"    authorization:\n      type: Bearer\n      credentials: {SCRAPE_TOKEN}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = _free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if os.environ.get("HYAC_SHOW_PROMETHEUS_LOG"):
            print(log_path.read_text(errors="replace"))


def _query(api: str, promql: str) -> list[dict]:
    try:
        answer = httpx.get(f"{api}/api/v1/query", params={"query": promql}, timeout=5)
    except httpx.TransportError:
        return []  # not listening yet
    if answer.status_code != 200:
        return []
    return list(answer.json()["data"]["result"])


def test_prometheus_scrapes_the_invocation_count(
    scraped_agent: RunningAgent, prometheus: str
) -> None:
    scraped_agent.deploy("prom-fn", "def main(context):\n    return 'scraped'\n")
    for _ in range(INVOCATIONS):
        answer = scraped_agent.invoke("prom-fn")
        assert answer.status_code == 200 and answer.json()["ok"], answer.text
    promql = 'sum(hyac_invocations_total{job="hyac",function="prom-fn",outcome="ok"})'
    result: list[dict] = []
    deadline = time.monotonic() + 90  # a wait for the scrapes, not a measurement
    while time.monotonic() < deadline:
        result = _query(prometheus, promql)
        if result and float(result[0]["value"][1]) == INVOCATIONS:
            break
        time.sleep(0.5)
    targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()
    health = [t["health"] for t in targets["data"]["activeTargets"]]
    assert health == ["up"], targets
    assert result and float(result[0]["value"][1]) == INVOCATIONS, (result, targets)
    # the platform's gauges arrive with the counters
    scraped = _query(prometheus, 'hyac_workers{job="hyac",state="live"}')
    assert scraped and float(scraped[0]["value"][1]) >= 1
