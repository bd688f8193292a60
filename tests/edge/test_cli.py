"""``hyac ip`` and ``hyac access`` against a real agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.edge.conftest import Edge


def hyac(edge: Edge, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    env.update(HYAC_DATA_DIR=str(edge.agent.data_dir), HYAC_CONFIG_DIR=os.environ["HYAC_CONFIG_DIR"],
               NO_COLOR="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "hyac_cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_ip_rules_and_access_from_the_cli(edge: Edge) -> None:
    edge.echo("clitenant", "echo")
    made = hyac(edge, "ip", "deny", "127.0.0.50", "--function", "echo", "-t", "clitenant",
                "--json")
    assert made.returncode == 0, made.stderr
    rule = json.loads(made.stdout)
    assert rule["cidr"] == "127.0.0.50/32"
    listed = hyac(edge, "ip", "ls", "-t", "clitenant")
    assert rule["id"] in listed.stdout and "function echo" in listed.stdout
    with edge.client("127.0.0.50") as client:
        assert client.get("/clitenant/echo").json()["error"]["rule"] == rule["id"]
    assert hyac(edge, "ip", "rm", rule["id"], "-t", "clitenant").returncode == 0
    with edge.client("127.0.0.50") as client:
        assert client.get("/clitenant/echo").status_code == 200

    assert hyac(edge, "access", "set", "echo", "--mode", "token", "--rate", "100/60s",
                "-t", "clitenant").returncode == 0
    key = hyac(edge, "access", "key", "add", "echo", "--name", "ci", "-t", "clitenant")
    assert key.returncode == 0 and key.stdout.startswith("hyac_k_")
    with edge.client() as client:
        assert client.get("/clitenant/echo").status_code == 401
        assert client.get("/clitenant/echo", headers={"X-Hyac-Key": key.stdout.strip()}
                          ).status_code == 200
    shown = json.loads(hyac(edge, "access", "show", "echo", "-t", "clitenant", "--json").stdout)
    assert shown["mode"] == "token"
    assert shown["rate_limit"] == {"requests": 100, "per_seconds": 60.0}


def test_bad_input_is_one_line_and_a_non_zero_exit(edge: Edge) -> None:
    bad = hyac(edge, "ip", "deny", "10.0.0.1/8")
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "invalid network" in bad.stderr
    assert "Traceback" not in bad.stderr
    as_json = hyac(edge, "access", "set", "echo", "--mode", "open", "--json")
    assert as_json.returncode != 0
    assert json.loads(as_json.stdout)["error"]["code"] == "invalid_input"
    rate = hyac(edge, "access", "set", "echo", "--rate", "lots")
    assert rate.returncode != 0 and "--rate" in rate.stderr


def test_domains_from_the_cli(edge: Edge) -> None:
    edge.echo("clidomains", "echo")
    added = hyac(edge, "domain", "add", "cli.example.test", "--function", "echo", "-t", "clidomains")
    assert added.returncode == 0, added.stderr
    assert "cli.example.test  active" in added.stdout
    listed = json.loads(hyac(edge, "domain", "ls", "-t", "clidomains", "--json").stdout)
    assert [d["host"] for d in listed] == ["cli.example.test"]
    with edge.client() as client:
        assert client.get("/p", headers={"Host": "cli.example.test"}).json()["path"] == "/p"
    assert hyac(edge, "domain", "rm", "cli.example.test", "-t", "clidomains").returncode == 0
    both = hyac(edge, "domain", "add", "x.example.test", "--function", "echo", "--tenant-root")
    assert both.returncode != 0 and "either" in both.stderr


def test_the_https_port_is_in_agent_json_and_agent_status(edge: Edge) -> None:
    state = json.loads((edge.agent.data_dir / "agent.json").read_text())
    assert state["https_port"] == edge.tls_port
    shown = hyac(edge, "agent", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["running"] is True and report["https_port"] == edge.tls_port
    said = hyac(edge, "agent", "status")
    assert f"HTTPS on port {edge.tls_port}" in said.stdout


def test_an_agent_on_every_address_gives_this_hosts_clients_a_loopback_url(edge: Edge) -> None:
    """Started with ``--host ::``: [::] is where it listens, not where to connect (refused
    where the host has no IPv6); the dual-stack listener takes 127.0.0.1 everywhere."""
    url = f"http://127.0.0.1:{edge.port}"
    assert edge.agent.url == url  # agent.json, which the CLI reads
    assert f"listening on [::]:{edge.port}, {url} on this host" in edge.agent.log_path.read_text()
    with edge.owner() as owner:
        assert owner.get("/v1/agent").json()["url"] == url
    status = hyac(edge, "agent", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["url"] == url
    link = hyac(edge, "console", "--print-url")
    assert link.returncode == 0, link.stderr
    assert link.stdout.startswith(f"{url}/console")


def test_rm_names_the_domains_removed_with_the_function(edge: Edge) -> None:
    edge.echo("rmtenant", "bound")
    with edge.owner("rmtenant") as owner:
        assert owner.post("/v1/domains", json={"host": "bound.rm.example.test",
                                               "function": "bound"}).status_code == 201
    removed = hyac(edge, "rm", "bound", "--yes", "-t", "rmtenant")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == "bound  deleted\n"
    assert "domain bound.rm.example.test was bound to it: removed too" in removed.stderr
    with edge.owner("rmtenant") as owner:
        assert owner.get("/v1/domains").json() == []
