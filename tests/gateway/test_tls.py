"""Local TLS material: created once, reused, private keys private."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509

from conduit_gateway.tls import ensure_local_tls


def test_material_is_created_with_private_keys_readable_by_owner_only(tmp_path: Path) -> None:
    material = ensure_local_tls(tmp_path / "tls")

    for path in (material.ca_cert, material.ca_key, material.server_cert, material.server_key):
        assert path.is_file()
    assert stat.S_IMODE(material.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(material.server_key.stat().st_mode) == 0o600


def test_server_certificate_names_localhost_and_loopback_and_is_signed_by_the_ca(tmp_path: Path) -> None:
    material = ensure_local_tls(tmp_path)
    ca = x509.load_pem_x509_certificate(material.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(material.server_cert.read_bytes())

    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_second_run_reuses_the_material(tmp_path: Path) -> None:
    first = ensure_local_tls(tmp_path)
    before = {p: p.read_bytes() for p in (first.ca_cert, first.ca_key, first.server_cert, first.server_key)}

    second = ensure_local_tls(tmp_path)

    assert second == first
    assert {p: p.read_bytes() for p in before} == before


def test_missing_server_certificate_is_reissued_by_the_same_ca(tmp_path: Path) -> None:
    material = ensure_local_tls(tmp_path)
    ca_before = material.ca_cert.read_bytes()
    material.server_cert.unlink()

    ensure_local_tls(tmp_path)

    assert material.ca_cert.read_bytes() == ca_before
    ca = x509.load_pem_x509_certificate(ca_before)
    x509.load_pem_x509_certificate(material.server_cert.read_bytes()).verify_directly_issued_by(ca)
