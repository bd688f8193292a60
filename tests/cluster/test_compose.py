"""docs/cluster/compose.yaml: what docs/cluster.md promises of it, and, where Compose is
installed (Debian's docker-compose package; scripts/services.sh installs it), that
``docker-compose config`` accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "docs" / "cluster"


def test_compose_file_describes_the_documented_cluster() -> None:
    compose = yaml.safe_load((CLUSTER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "balancer", "agent1", "agent2", "worker1", "worker2",
            "keys"} <= set(services)
    for name in ("agent1", "agent2", "worker1", "worker2"):
        env = services[name]["environment"]
        assert env["HYAC_DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert env["HYAC_QUEUE"] == "celery" and env["HYAC_BROKER_URL"].startswith("redis://")
        assert "keys:/keys:ro" in services[name]["volumes"], name  # the shared keys
    assert services["agent1"]["command"][0] == "serve"
    assert services["worker1"]["command"][0] == "worker"
    haproxy = (CLUSTER / "haproxy.cfg").read_text()
    assert "server agent1 agent1:8040" in haproxy and "server agent2 agent2:8040" in haproxy
    assert "retry-on conn-failure\n" in haproxy  # never resends a request an agent received
    for path in ("Dockerfile", "node.sh"):
        assert (CLUSTER / path).is_file()


def test_docker_compose_config_accepts_it() -> None:
    tool = shutil.which("docker-compose")
    argv = [tool, "-f", str(CLUSTER / "compose.yaml"), "config", "-q"] if tool else None
    if argv is None and shutil.which("docker") is not None:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            argv = ["docker", "compose", "-f", str(CLUSTER / "compose.yaml"), "config", "-q"]
    if argv is None:
        pytest.skip("Compose is not installed (apt-get install docker-compose; "
                    "scripts/services.sh installs it)")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
