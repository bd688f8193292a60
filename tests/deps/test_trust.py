"""The installers trust the host's certificate authorities, so a site whose proxy inspects
TLS (its CA in the system store, or in SSL_CERT_FILE / REQUESTS_CA_BUNDLE) can install."""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import ipaddress
import json
import ssl
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hyac_agent.deps import installers
from hyac_agent.runtimes import resolve
from tests.conftest import current_runtime

#: everything that names a certificate or picks an installer's trust; cleared per test
SETTINGS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT", "UV_NATIVE_TLS",
            "UV_SYSTEM_CERTS", "NODE_EXTRA_CA_CERTS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
            "PIP_FIND_LINKS", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX")


@pytest.fixture(autouse=True)
def no_trust_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The installer steps run, recorded instead of run; each answers as a success would."""
    seen: list[dict[str, Any]] = []

    def record(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append({"argv": argv, **kwargs})
        if "--package-lock-only" in argv:
            (kwargs["writable"] / "package-lock.json").write_text("{}")
        six = {"metadata": {"name": "six", "version": "1.16.0"}}
        out = json.dumps({"install": [six]}) if "--report" in argv else "six==1.16.0\n"
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(installers, "run_sandboxed", record)
    monkeypatch.setattr(installers, "_npm", lambda: ("npm", Path("/usr/share/nodejs")))
    return seen


def install_six(tmp_path: Path) -> None:
    runtime = resolve(current_runtime())
    lock = installers.python_lock(runtime, ["six==1.16.0"], sandboxed=True)
    installers.python_install(runtime, lock, tmp_path, sandboxed=True, allow_urls=False)


def test_uv_uses_the_system_store(tmp_path: Path, steps: list[dict[str, Any]],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(installers, "uv_binary", lambda: "/usr/bin/uv")
    install_six(tmp_path)
    assert [s["argv"][1:3] for s in steps] == [["pip", "compile"], ["pip", "install"]]
    for step in steps:
        assert step["env"]["UV_NATIVE_TLS"] == step["env"]["UV_SYSTEM_CERTS"] == "1"
        assert "SSL_CERT_FILE" not in step["env"]  # uv finds the system store itself


def test_pip_is_given_the_system_bundle(tmp_path: Path, steps: list[dict[str, Any]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(installers, "uv_binary", lambda: None)
    system = ssl.get_default_verify_paths().cafile
    assert system, "this host has no CA bundle where OpenSSL looks"
    install_six(tmp_path)
    assert [s["argv"][1:4] for s in steps] == [["-m", "pip", "install"]] * 2
    for step in steps:
        cert = step["argv"][step["argv"].index("--cert") + 1]
        assert cert == str(Path(system).resolve())
        assert Path(cert) in step["readable"]


def test_a_named_bundle_is_used_and_shown_to_the_sandbox(
    tmp_path: Path, steps: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_text("")
    link = tmp_path / "ca-link.pem"
    link.symlink_to(bundle)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(link))
    (tmp_path / "env").mkdir()
    for uv in ("/usr/bin/uv", None):
        monkeypatch.setattr(installers, "uv_binary", lambda uv=uv: uv)
        install_six(tmp_path / "env")
    installers.npm_lock({"name": "x"}, sandboxed=True)
    uv_steps, pip_steps, npm_steps = steps[:2], steps[2:4], steps[4:]
    assert all(s["env"]["SSL_CERT_FILE"] == str(bundle) for s in uv_steps)
    assert all(s["argv"][s["argv"].index("--cert") + 1] == str(bundle) for s in pip_steps)
    assert npm_steps[0]["env"] == {"NODE_EXTRA_CA_CERTS": str(bundle)}
    assert all(bundle in s["readable"] for s in steps)


def test_the_operators_own_settings_win(tmp_path: Path, steps: list[dict[str, Any]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_NATIVE_TLS", "0")
    monkeypatch.setenv("PIP_CERT", "/etc/hostname")
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", "/etc/hostname")
    for uv in ("/usr/bin/uv", None):
        monkeypatch.setattr(installers, "uv_binary", lambda uv=uv: uv)
        install_six(tmp_path)
    installers.npm_lock({"name": "x"}, sandboxed=True)
    assert all(s["env"] == {} for s in steps if "env" in s)
    assert not any("--cert" in s["argv"] for s in steps)
    assert all(Path("/etc/hostname").resolve() in s["readable"] for s in steps)


# -- for real: a package index on loopback, over TLS from a CA no installer bundles ------


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1, as PEM files."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hyac test proxy CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(
                  [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                  ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _wheel(name: str, version: str) -> tuple[str, bytes]:
    """A pure-Python wheel holding one module that says its own name."""
    module, dist = name.replace("-", "_"), f"{name.replace('-', '_')}-{version}"
    files = {
        f"{module}/__init__.py": f"NAME = {name!r}\n".encode(),
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                      .encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hyac-tests\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()}"
        f",{len(data)}\n" for path, data in files.items()) + f"{dist}.dist-info/RECORD,,\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in {**files, f"{dist}.dist-info/RECORD": record.encode()}.items():
            archive.writestr(path, data)
    return f"{dist}-py3-none-any.whl", buffer.getvalue()


@contextmanager
def tls_index(folder: Path, project: str) -> Iterator[tuple[str, list[str]]]:
    """(index URL, paths fetched) of a PEP 503 index serving ``project`` 1.0 over HTTPS."""
    filename, wheel = _wheel(project, "1.0")
    digest = hashlib.sha256(wheel).hexdigest()
    pages = {
        f"/simple/{project}/": ("text/html", f'<a href="/files/{filename}#sha256={digest}">'
                                             f"{filename}</a>".encode()),
        f"/files/{filename}": ("application/octet-stream", wheel),
    }
    fetched: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
            kind, body = pages.get(self.path, ("text/plain", b""))
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            fetched.append(self.path)
            self.do_HEAD()
            self.wfile.write(pages.get(self.path, ("", b""))[1])

        def log_message(self, *args: object) -> None:
            pass

    _, cert, key = _certificates(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/simple", fetched
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_packages_come_through_an_index_signed_by_the_hosts_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: str,
) -> None:
    if installer == "pip":
        monkeypatch.setattr(installers, "uv_binary", lambda: None)
    else:
        assert installers.uv_binary(), "uv is not installed (scripts/setup.sh installs it)"
    (tmp_path / "certs").mkdir()
    runtime = resolve(current_runtime())
    with tls_index(tmp_path / "certs", "hyac-trust-probe") as (index, fetched):
        # The CA is the host's (a proxy's CA, say), in a file no sandbox shows by itself.
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "certs" / "ca.pem"))
        monkeypatch.setenv("UV_INDEX_URL", index)
        monkeypatch.setenv("PIP_INDEX_URL", index)
        lock = installers.python_lock(runtime, ["hyac-trust-probe"], sandboxed=True)
        assert lock.splitlines()[0].startswith("hyac-trust-probe==1.0"), lock
        (tmp_path / "env").mkdir()
        installers.python_install(runtime, lock, tmp_path / "env", sandboxed=True,
                                  allow_urls=False)
        assert "/files/hyac_trust_probe-1.0-py3-none-any.whl" in fetched
    installed = tmp_path / "env" / "site" / "hyac_trust_probe" / "__init__.py"
    assert installed.read_text() == "NAME = 'hyac-trust-probe'\n"
