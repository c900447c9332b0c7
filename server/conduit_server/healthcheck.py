"""`python -m conduit_server.healthcheck HOST:PORT`: exit 0 when that gRPC server is SERVING.

A container health check: imports only grpc, so it answers well within a check's timeout even on
a busy host (the `conduit` command loads every service's CLI first).
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def serving(address: str, timeout_seconds: float = 2.0) -> bool:
    """One gRPC health check of the server's overall status."""
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                               timeout=timeout_seconds)
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m conduit_server.healthcheck HOST:PORT")
    raise SystemExit(0 if serving(sys.argv[1]) else 1)


if __name__ == "__main__":
    main()
