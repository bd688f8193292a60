"""HTTPS for custom domains: uploaded certificates checked, SNI picking one of two,
plain HTTP redirected, and a real TLS client (curl --resolve)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from tests.edge.conftest import Edge, curl_https


def upload(edge: Edge, tenant: str, host: str, cert: str, key: str) -> httpx.Response:
    with edge.owner(tenant) as owner:
        return owner.put(f"/v1/domains/{host}/certificate", json={"cert_pem": cert, "key_pem": key})


def leaf_pems(leaf: trustme.LeafCert) -> tuple[str, str]:
    chain = "".join(blob.bytes().decode() for blob in leaf.cert_chain_pems)
    return chain, leaf.private_key_pem.bytes().decode()


def served_names(edge: Edge, ca: trustme.CA, name: str) -> list[str]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with socket.create_connection(("127.0.0.1", edge.tls_port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        cert = tls.getpeercert()
    return [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_sni_picks_each_domains_certificate(edge: Edge, ca: trustme.CA, tmp_path: Path) -> None:
    edge.echo("tls", "echo")
    for host in ("a.example.test", "b.example.test"):
        with edge.owner("tls") as owner:
            assert owner.post("/v1/domains", json={"host": host, "function": "echo"}
                              ).status_code == 201
        made = upload(edge, "tls", host, *leaf_pems(ca.issue_cert(host)))
        assert made.status_code == 200, made.text
    assert served_names(edge, ca, "a.example.test") == ["a.example.test"]
    assert served_names(edge, ca, "b.example.test") == ["b.example.test"]
    with pytest.raises(ssl.SSLError):
        served_names(edge, ca, "unknown.example.test")
    # plain HTTP to a domain with a certificate goes to HTTPS
    with edge.client() as client:
        moved = client.get("/p?q=1", headers={"Host": "a.example.test"})
    assert moved.status_code == 308
    assert moved.headers["location"] == f"https://a.example.test:{edge.tls_port}/p?q=1"
    with edge.owner("tls") as owner:
        shown = owner.get("/v1/domains/a.example.test/certificate").json()
    assert shown["source"] == "upload" and "key_pem" not in shown
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    assert curl_https(edge, "b.example.test", tmp_path / "ca.pem", "/over/tls")["path"] == "/over/tls"


def test_uploaded_certificates_are_checked(edge: Edge, ca: trustme.CA) -> None:
    edge.echo("checked", "echo")
    with edge.owner("checked") as owner:
        assert owner.post("/v1/domains", json={"host": "c.example.test", "function": "echo"}
                          ).status_code == 201
    cert, _ = leaf_pems(ca.issue_cert("c.example.test"))
    _, other_key = leaf_pems(ca.issue_cert("c.example.test"))
    mismatched = upload(edge, "checked", "c.example.test", cert, other_key)
    assert mismatched.status_code == 400
    assert mismatched.json()["error"]["code"] == "invalid_certificate"
    assert "does not match" in mismatched.json()["error"]["message"]
    wrong_name = upload(edge, "checked", "c.example.test", *leaf_pems(ca.issue_cert("d.example.test")))
    assert "does not name c.example.test" in wrong_name.json()["error"]["message"]
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    expired = upload(edge, "checked", "c.example.test", *leaf_pems(ca.issue_cert(
        "c.example.test", not_before=past - dt.timedelta(days=30), not_after=past)))
    assert "expires" in expired.json()["error"]["message"]
    # a chain whose next certificate did not sign the leaf
    stranger = trustme.CA()
    leaf_cert, leaf_key = leaf_pems(ca.issue_cert("c.example.test"))
    broken = upload(edge, "checked", "c.example.test",
                    leaf_cert + stranger.cert_pem.bytes().decode(), leaf_key)
    assert "chain is broken" in broken.json()["error"]["message"]
    assert upload(edge, "checked", "c.example.test", "not a pem", leaf_key).status_code == 400
    # an intermediate CA's chain is fine
    child = ca.create_child_ca()
    assert upload(edge, "checked", "c.example.test",
                  *leaf_pems(child.issue_cert("c.example.test"))).status_code == 200
    # another tenant cannot put a certificate on the domain
    edge.tenant("intruder")
    assert upload(edge, "intruder", "c.example.test",
                  *leaf_pems(ca.issue_cert("c.example.test"))).status_code == 404
