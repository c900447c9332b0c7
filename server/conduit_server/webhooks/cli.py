"""`conduit webhooks status`: the delivery queue as the webhooks service sees it (an admin RPC)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import grpc

from conduit.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from conduit_server.runtime.settings import Settings

TOKEN_ENV = "CONDUIT_TOKEN"  # noqa: S105 - the name of a variable, not a secret


def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"an admin access token is required (--token or {TOKEN_ENV})", file=err)
        return 2
    target = args.target or settings.address_of("webhooks")
    if args.tls:
        roots = Path(args.ca_file).read_bytes() if args.ca_file else None
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots))
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        try:
            status = webhooks_pb2_grpc.WebhooksServiceStub(channel).GetDeliveryStatus(
                webhooks_pb2.GetDeliveryStatusRequest(), metadata=(("authorization", f"Bearer {token}"),),
                timeout=30)
        except grpc.RpcError as error:
            print(f"webhooks status failed: {error.code().name}: {error.details()}", file=err)
            return 1
    print(f"endpoints            {status.endpoints_count}\n"
          f"pending messages     {status.pending_count}\n"
          f"oldest pending       {status.oldest_pending_seconds:.3f}s\n"
          f"dead letters         {status.dead_count}\n"
          f"delivered (replica)  {status.delivered_count}\n"
          f"failed (replica)     {status.failed_attempts_count}", file=out)
    return 0


def _handle(args: argparse.Namespace, settings: Settings) -> None:
    sys.exit(run(args, settings))


def register(commands: Any) -> None:
    """Add `webhooks status`; it sets `handler(args, settings)`."""
    webhooks = commands.add_parser("webhooks", help="webhooks service operations")
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True)
    status = actions.add_parser("status", help="endpoints, pending messages and their age, dead letters")
    status.add_argument("--target", default="", help="host:port of the webhooks service (default: settings)")
    status.add_argument("--token", default="", help=f"an admin's access token (default: ${TOKEN_ENV})")
    status.add_argument("--tls", action="store_true", help="connect with TLS")
    status.add_argument("--ca-file", default=None, help="PEM roots for --tls (default: system roots)")
    status.set_defaults(handler=_handle)


__all__ = ["register", "run"]
