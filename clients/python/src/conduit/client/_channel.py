"""Channels: TLS by default (trusting `ca_file` or `CONDUIT_CA_FILE` when given), plaintext on request."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

#: The environment variable naming a CA bundle to trust (the local CA `make run` prints).
CA_FILE_ENV = "CONDUIT_CA_FILE"
VERSION = "0.1.0"
USER_AGENT = f"conduit-client-python/{VERSION}"

ChannelOptions = Sequence[tuple[str, Any]]


#: Keepalive pings on every channel: a half-open connection is noticed within about 40 s even with
#: no call in flight (the services accept a ping every 10 s; runtime/server.py).
KEEPALIVE_OPTIONS: ChannelOptions = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)

PathLike = str | os.PathLike[str]


def channel_credentials(*, tls: bool, ca_file: PathLike | None, client_cert_file: PathLike | None = None,
                        client_key_file: PathLike | None = None) -> grpc.ChannelCredentials | None:
    """TLS trusting `ca_file` (or `$CONDUIT_CA_FILE`, else the system roots), presenting a client
    certificate when `client_cert_file` and `client_key_file` are given (mTLS); None for plaintext."""
    if not tls:
        if ca_file is not None or client_cert_file is not None or client_key_file is not None:
            raise ValueError("ca_file and client certificates are only used with tls=True")
        return None
    if (client_cert_file is None) != (client_key_file is None):
        raise ValueError("pass client_cert_file and client_key_file together")
    path = ca_file if ca_file is not None else os.environ.get(CA_FILE_ENV) or None
    roots = Path(path).read_bytes() if path is not None else None
    chain = Path(client_cert_file).read_bytes() if client_cert_file is not None else None
    key = Path(client_key_file).read_bytes() if client_key_file is not None else None
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=chain)


def _options(options: ChannelOptions) -> list[tuple[str, Any]]:
    merged = {**dict(KEEPALIVE_OPTIONS), **dict(options)}
    merged.setdefault("grpc.primary_user_agent", USER_AGENT)
    return list(merged.items())


def sync_channel(target: str, *, tls: bool, ca_file: str | os.PathLike[str] | None,
                 options: ChannelOptions, interceptors: Sequence[grpc.Interceptor],
                 client_cert_file: PathLike | None = None, client_key_file: PathLike | None = None) -> grpc.Channel:
    """A blocking channel to `target` (`host:port`), with the caller's interceptors applied."""
    credentials = channel_credentials(tls=tls, ca_file=ca_file, client_cert_file=client_cert_file,
                                      client_key_file=client_key_file)
    channel = (grpc.secure_channel(target, credentials, _options(options)) if credentials is not None
               else grpc.insecure_channel(target, _options(options)))
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


def async_channel(target: str, *, tls: bool, ca_file: str | os.PathLike[str] | None,
                  options: ChannelOptions, interceptors: Sequence[Any],
                 client_cert_file: PathLike | None = None, client_key_file: PathLike | None = None) -> grpc.aio.Channel:
    """A `grpc.aio` channel to `target` (`host:port`), with the caller's interceptors applied."""
    credentials = channel_credentials(tls=tls, ca_file=ca_file, client_cert_file=client_cert_file,
                                      client_key_file=client_key_file)
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, _options(options),
                                       interceptors=list(interceptors) or None)
    return grpc.aio.insecure_channel(target, _options(options), interceptors=list(interceptors) or None)
