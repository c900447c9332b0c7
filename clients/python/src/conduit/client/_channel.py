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


def channel_credentials(*, tls: bool,
                        ca_file: str | os.PathLike[str] | None) -> grpc.ChannelCredentials | None:
    """TLS trusting `ca_file` (or `$CONDUIT_CA_FILE`, else the system roots); None for plaintext."""
    if not tls:
        if ca_file is not None:
            raise ValueError("ca_file is only used with tls=True")
        return None
    path = ca_file if ca_file is not None else os.environ.get(CA_FILE_ENV) or None
    roots = Path(path).read_bytes() if path is not None else None
    return grpc.ssl_channel_credentials(root_certificates=roots)


def _options(options: ChannelOptions) -> list[tuple[str, Any]]:
    merged = dict(options)
    merged.setdefault("grpc.primary_user_agent", USER_AGENT)
    return list(merged.items())


def sync_channel(target: str, *, tls: bool, ca_file: str | os.PathLike[str] | None,
                 options: ChannelOptions, interceptors: Sequence[grpc.Interceptor]) -> grpc.Channel:
    """A blocking channel to `target` (`host:port`), with the caller's interceptors applied."""
    credentials = channel_credentials(tls=tls, ca_file=ca_file)
    channel = (grpc.secure_channel(target, credentials, _options(options)) if credentials is not None
               else grpc.insecure_channel(target, _options(options)))
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


def async_channel(target: str, *, tls: bool, ca_file: str | os.PathLike[str] | None,
                  options: ChannelOptions, interceptors: Sequence[Any]) -> grpc.aio.Channel:
    """A `grpc.aio` channel to `target` (`host:port`), with the caller's interceptors applied."""
    credentials = channel_credentials(tls=tls, ca_file=ca_file)
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, _options(options),
                                       interceptors=list(interceptors) or None)
    return grpc.aio.insecure_channel(target, _options(options), interceptors=list(interceptors) or None)
