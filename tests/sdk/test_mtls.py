"""`connect` presents a client certificate (mTLS) to a server that requires one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conduit.articles.v1 import articles_pb2_grpc
from conduit.client import AsyncConduit, Conduit, RetryPolicy, Unavailable
from conduit_gateway.tls import ensure_local_tls
from tests.sdk.support import ScriptedTags


def _client_certificate(ca_cert: Path, ca_key: Path, directory: Path) -> tuple[Path, Path]:
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sdk-client")]))
                   .issuer_name(ca.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                   .sign(signer, hashes.SHA256()))
    cert_file, key_file = directory / "client.pem", directory / "client-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def mtls_server(tmp_path: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    material = ensure_local_tls(tmp_path / "tls")
    credentials = grpc.ssl_server_credentials(
        [(material.server_key.read_bytes(), material.server_cert.read_bytes())],
        root_certificates=material.ca_cert.read_bytes(), require_client_auth=True)
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    articles_pb2_grpc.add_TagsServiceServicer_to_server(ScriptedTags(), server)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    cert, key = _client_certificate(material.ca_cert, material.ca_key, tmp_path)
    yield f"localhost:{port}", material.ca_cert, cert, key
    server.stop(None).wait()


def test_a_client_certificate_gets_through_and_its_absence_does_not(
        mtls_server: tuple[str, Path, Path, Path]) -> None:
    target, ca, cert, key = mtls_server
    with Conduit.connect(target, ca_file=ca, client_cert_file=cert, client_key_file=key) as conduit:
        assert conduit.tags.list() == ["grpc", "python"]
    with Conduit.connect(target, ca_file=ca, retry=RetryPolicy(max_attempts=1), timeout=5) as anonymous, \
            pytest.raises(Unavailable):
        anonymous.tags.list()


async def test_the_async_client_presents_the_certificate_too(mtls_server: tuple[str, Path, Path, Path]) -> None:
    target, ca, cert, key = mtls_server
    async with await AsyncConduit.connect(target, ca_file=ca, client_cert_file=cert,
                                          client_key_file=key) as conduit:
        assert await conduit.tags.list() == ["grpc", "python"]


def test_half_a_client_certificate_is_refused(mtls_server: tuple[str, Path, Path, Path]) -> None:
    target, ca, cert, _ = mtls_server
    with pytest.raises(ValueError, match="together"):
        Conduit.connect(target, ca_file=ca, client_cert_file=cert)
