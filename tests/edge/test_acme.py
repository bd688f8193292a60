"""Certificates from a real ACME server on loopback (Debian's pebble, its HTTPS signed
by a trustme CA): issued over HTTP-01 against the agent's own HTTP listener, served by
SNI to curl, and renewed before they end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from tests.edge.conftest import DnsServer, Edge, curl_https, free_port, free_udp_port
from tests.edge.test_cli import hyac
from tests.waiting import eventually

pytestmark = pytest.mark.skipif(shutil.which("pebble") is None,
                                reason="pebble is not installed (apt-get install pebble)")


@dataclass
class Pebble:
    directory: str
    management: str
    ca_pem: str  # the CA of pebble's own HTTPS (trustme's)
    ca_file: Path


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def pebble(edge: Edge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    folder = tmp_path_factory.mktemp("pebble")
    ca = trustme.CA()
    served = ca.issue_cert("127.0.0.1", "localhost")
    served.private_key_pem.write_to_path(str(folder / "key.pem"))
    served.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    port, management, dns_port = free_port(), free_port(), free_udp_port()
    (folder / "config.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{port}", "managementListenAddress": f"127.0.0.1:{management}",
        "certificate": str(folder / "cert.pem"), "privateKey": str(folder / "key.pem"),
        # HTTP-01 goes to the agent's own HTTP listener
        "httpPort": edge.port, "tlsPort": free_port(), "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}))
    dns = DnsServer(dns_port, loopback_suffix=".acme.test.")
    log = (folder / "pebble.log").open("wb")
    process = subprocess.Popen(
        ["pebble", "-config", str(folder / "config.json"), "-dnsserver", f"127.0.0.1:{dns_port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
    try:
        eventually(lambda: process.poll() is not None or _listening(port), timeout=30)
        assert process.poll() is None, (folder / "pebble.log").read_text()
        yield Pebble(f"https://127.0.0.1:{port}/dir", f"https://127.0.0.1:{management}",
                     ca.cert_pem.bytes().decode(), folder / "ca.pem")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        log.close()
        dns.close()
        with edge.owner() as owner:
            owner.patch("/v1/edge/settings", json={"acme_directory": "", "acme_ca_bundle": ""})


def certificate(edge: Edge, tenant: str, host: str) -> dict | None:
    with edge.owner(tenant) as owner:
        answer = owner.get(f"/v1/domains/{host}/certificate")
    return answer.json() if answer.status_code == 200 else None


def test_a_tenant_cannot_ask_for_acme_without_the_owners_server(edge: Edge) -> None:
    edge.echo("noacme", "echo")
    with edge.owner() as owner:
        assert owner.patch("/v1/edge/settings", json={"acme_directory": ""}).status_code == 200
    with edge.owner("noacme") as owner:
        refused = owner.post("/v1/domains", json={"host": "x.noacme.test", "function": "echo",
                                                  "acme": True})
    assert refused.status_code == 400 and "ACME" in refused.json()["error"]["message"]


def test_acme_issues_serves_and_renews(edge: Edge, pebble: Pebble, tmp_path: Path) -> None:
    edge.echo("acme", "echo")
    with edge.owner() as owner:
        assert owner.patch("/v1/edge/settings", json={
            "acme_directory": pebble.directory, "acme_ca_bundle": pebble.ca_pem,
            "acme_email": "ops@example.com", "acme_renew_before_days": 30,
        }).status_code == 200
    with edge.owner("acme") as owner:
        made = owner.post("/v1/domains", json={"host": "www.acme.test", "function": "echo",
                                               "acme": True})
    assert made.status_code == 201, made.text
    first = eventually(lambda: certificate(edge, "acme", "www.acme.test"), timeout=120)
    assert first["source"] == "acme"
    # renewal: a certificate within the renewal window is replaced by a new one
    with edge.owner() as owner:
        owner.patch("/v1/edge/settings", json={"acme_renew_before_days": 36500})
    try:
        renewed = eventually(lambda: (c := certificate(edge, "acme", "www.acme.test"))
                             and c["fingerprint"] != first["fingerprint"] and c, timeout=120)
    finally:
        with edge.owner() as owner:
            owner.patch("/v1/edge/settings", json={"acme_renew_before_days": 30})
    assert renewed["source"] == "acme"
    # from the CLI, waiting for it
    assert hyac(edge, "domain", "add", "cli.acme.test", "--function", "echo", "-t", "acme"
                ).returncode == 0
    waited = hyac(edge, "domain", "acme", "cli.acme.test", "--wait", "120", "-t", "acme")
    assert waited.returncode == 0, waited.stderr
    assert "certificate by ACME" in waited.stdout
    assert certificate(edge, "acme", "cli.acme.test")["source"] == "acme"
    # served by SNI, and pebble's roots sign what it issues: curl trusts them alone
    trusting = ssl.create_default_context(cafile=str(pebble.ca_file))
    root = httpx.get(f"{pebble.management}/roots/0", verify=trusting).text
    (tmp_path / "root.pem").write_text(root)
    assert curl_https(edge, "www.acme.test", tmp_path / "root.pem", "/hello")["path"] == "/hello"
