"""Certificates of custom domains: checking an uploaded one, and the TLS contexts the
HTTPS listener picks by SNI.

A certificate is accepted when its key matches the leaf, the leaf names the domain
(exactly or by a one-label wildcard), it is valid now and for longer than a day, and
each certificate of the chain given is signed by the next. The key is stored encrypted
(Fernet, the agent's ``secrets.key``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyac_common.errors import InvalidCertificate

MAX_PEM = 64 * 1024


@dataclass(frozen=True)
class Checked:
    """An accepted certificate: the chain and key as PEM, when it ends, its fingerprint."""

    cert_pem: str
    key_pem: str
    not_after: float
    fingerprint: str
    names: list[str]


def _refuse(message: str, **details: Any) -> InvalidCertificate:
    return InvalidCertificate(message, **details)


def name_matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def check(host: str, cert_pem: str, key_pem: str, now: dt.datetime | None = None) -> Checked:
    """``cert_pem`` (leaf first, then its chain) and ``key_pem`` if they serve ``host``;
    InvalidInput (``invalid_certificate``) saying why not."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if not cert_pem or not key_pem or len(cert_pem) > MAX_PEM or len(key_pem) > MAX_PEM:
        raise _refuse(f"give the certificate chain and the key as PEM (at most {MAX_PEM} bytes each)")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        raise _refuse("the certificate is not PEM (-----BEGIN CERTIFICATE-----)") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise _refuse("the key is not an unencrypted PEM private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                            ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        raise _refuse("the key is of a kind TLS servers do not use")
    leaf = chain[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise _refuse("the key does not match the certificate (its public key differs)")
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName
                                                        ).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not any(name_matches(name, host) for name in names):
        raise _refuse(f"the certificate does not name {host} (it names: "
                      f"{', '.join(names) or 'no DNS name'})", names=names)
    now = now or dt.datetime.now(dt.timezone.utc)
    for cert in chain:
        if cert.not_valid_before_utc > now + dt.timedelta(minutes=5):
            raise _refuse("a certificate of the chain is not valid before "
                          f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        if cert.not_valid_after_utc <= now + dt.timedelta(days=1):
            raise _refuse("a certificate of the chain expires "
                          f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC (or within a day)")
    for cert, issuer in zip(chain, chain[1:], strict=False):
        try:
            cert.verify_directly_issued_by(issuer)
        except Exception as exc:  # InvalidSignature, or a key kind that cannot sign
            raise _refuse(f"the chain is broken: {cert.subject.rfc4514_string()} is not signed by "
                          f"the next certificate, {issuer.subject.rfc4514_string()} "
                          f"({type(exc).__name__})") from None
    pem_chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    context_for(pem_chain, pem_key)  # OpenSSL takes it too
    return Checked(pem_chain, pem_key, leaf.not_valid_after_utc.timestamp(),
                   hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
                   list(names))


def context_for(cert_pem: str, key_pem: str) -> ssl.SSLContext:
    """A server context with this chain and key (OpenSSL reads them from files: a
    private temporary one, gone before this returns)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    fd, name = tempfile.mkstemp(prefix="hyac-cert-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key_pem + cert_pem)
        try:
            context.load_cert_chain(name)
        except ssl.SSLError as exc:
            raise _refuse(f"OpenSSL refuses the certificate and key: {exc.reason or exc}") from None
    finally:
        Path(name).unlink(missing_ok=True)
    return context
