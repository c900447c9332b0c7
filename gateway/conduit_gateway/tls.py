"""Local TLS material for the gateway: a private CA and a localhost server certificate.

Created once under a state directory and reused on later runs, so that a client that trusts
`ca.pem` keeps working across restarts. Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=397)
# Renew the server certificate this long before it expires.
RENEW_BEFORE = dt.timedelta(days=30)
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the PEM files the gateway serves and clients trust."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def ensure_local_tls(directory: Path) -> TlsMaterial:
    """Return the local CA and server certificate under `directory`, creating what is missing.

    An existing CA is reused; the server certificate is (re)issued when absent, not signed by
    the current CA, or within `RENEW_BEFORE` of expiry.
    """
    directory.mkdir(parents=True, exist_ok=True)
    material = TlsMaterial(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
    )
    now = dt.datetime.now(dt.UTC)
    if material.ca_cert.exists() and material.ca_key.exists():
        ca_cert = x509.load_pem_x509_certificate(material.ca_cert.read_bytes())
        loaded = serialization.load_pem_private_key(material.ca_key.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{material.ca_key} is not an EC private key")
        ca_key = loaded
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _issue_ca(ca_key, now)
        _write_key(material.ca_key, ca_key)
        material.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        material.server_cert.unlink(missing_ok=True)

    if not _server_cert_usable(material, ca_cert, now):
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _issue_server(server_key, ca_key, ca_cert, now)
        _write_key(material.server_key, server_key)
        material.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    return material


def _issue_ca(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Conduit Mesh local CA")])
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue_server(key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
                  ca_cert: x509.Certificate, now: dt.datetime) -> x509.Certificate:
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_ADDRESSES]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _server_cert_usable(material: TlsMaterial, ca_cert: x509.Certificate, now: dt.datetime) -> bool:
    if not (material.server_cert.exists() and material.server_key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(material.server_cert.read_bytes())
    if cert.issuer != ca_cert.subject or cert.not_valid_after_utc - RENEW_BEFORE < now:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # Create with 0600 from the start: the key is never readable by others, even briefly.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    path.chmod(0o600)


__all__ = ["TlsMaterial", "ensure_local_tls"]
