"""`conduit search reindex` (with progress) and `conduit search status`, through the search service's
admin RPCs: the service that owns the index does the work, the command shows it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import grpc

from conduit.search.v1 import search_pb2, search_pb2_grpc
from conduit_server.runtime.settings import Settings

TOKEN_ENV = "CONDUIT_TOKEN"  # noqa: S105 - the name of a variable, not a secret


def _channel(target: str, *, tls: bool, ca_file: str | None) -> grpc.Channel:
    if not tls:
        return grpc.insecure_channel(target)
    roots = Path(ca_file).read_bytes() if ca_file else None
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots))


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width if total <= 0 else min(width, width * done // total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"an admin access token is required (--token or {TOKEN_ENV})", file=err)
        return 2
    metadata = (("authorization", f"Bearer {token}"),)
    with _channel(args.target or settings.address_of("search"), tls=args.tls, ca_file=args.ca_file) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        try:
            if args.search_command == "status":
                status = stub.GetIndexStatus(search_pb2.GetIndexStatusRequest(), metadata=metadata, timeout=30)
                print(f"backend            {status.backend}\n"
                      f"documents          {status.documents_count}\n"
                      f"tombstones         {status.tombstones_count}\n"
                      f"newest sequence    {status.newest_sequence}\n"
                      f"indexing lag       {status.indexing_lag_seconds:.3f}s\n"
                      f"indexed (replica)  {status.documents_indexed}", file=out)
                return 0
            last: Any = None
            for progress in stub.WatchReindexArticles(search_pb2.WatchReindexArticlesRequest(), metadata=metadata):
                last = progress
                if not args.quiet:
                    print(f"\r{_bar(progress.indexed_count, progress.total_count)} {progress.indexed_count}"
                          f"/{progress.total_count} {progress.phase:<10}", end="", file=err, flush=True)
        except grpc.RpcError as error:
            print(f"\nsearch {args.search_command} failed: {error.code().name}: {error.details()}", file=err)
            return 1
    if not args.quiet:
        print(file=err)
    print(f"reindexed {last.indexed_count if last is not None else 0} articles", file=out)
    return 0


def _handle(args: argparse.Namespace, settings: Settings) -> None:
    sys.exit(run(args, settings))


def register(commands: Any) -> None:
    """Add `search reindex` and `search status`; each sets `handler(args, settings)`."""
    search = commands.add_parser("search", help="search service operations")
    actions = search.add_subparsers(dest="search_command", required=True)
    for name, text in (("reindex", "rebuild the index from the articles service, with progress; safe under load"),
                       ("status", "documents indexed, tombstones, indexing lag")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--target", default="", help="host:port of the search service (default: settings)")
        action.add_argument("--token", default="", help=f"an admin's access token (default: ${TOKEN_ENV})")
        action.add_argument("--tls", action="store_true", help="connect with TLS")
        action.add_argument("--ca-file", default=None, help="PEM roots for --tls (default: system roots)")
        action.add_argument("--quiet", action="store_true", help="no progress bar")
        action.set_defaults(handler=_handle)


__all__ = ["register", "run"]
