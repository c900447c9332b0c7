"""Operator commands of the articles service: `conduit articles import FILE.jsonl`.

The file holds one JSON object per line with RawArticle's fields (`title`,
`description`, `body`, `tagList` or `tag_list`, `author`, `createdAt`). It is
streamed through ImportArticles, never loaded whole; a progress line shows how
far the upload got. The server validates every item; a line that is not JSON
is sent as an empty item, so the server's indexes stay aligned with the lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf import json_format

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit_server.runtime.secrets import with_local_secrets
from conduit_server.runtime.settings import Settings

TOKEN_ENV = "CONDUIT_TOKEN"  # noqa: S105 - the name of an environment variable, not a secret


class ProgressLine:
    """One status line: redrawn in place on a terminal, printed every `every` seconds otherwise."""

    def __init__(self, total_bytes: int, stream: TextIO = sys.stderr, *, every: float = 2.0) -> None:
        self._total = max(total_bytes, 1)
        self._stream = stream
        self._tty = stream.isatty()
        self._every = 0.1 if self._tty else every
        self._started = time.monotonic()
        self._shown = 0.0

    def update(self, done_bytes: int, items: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._shown < self._every:
            return
        self._shown = now
        fraction = min(done_bytes / self._total, 1.0)
        filled = int(fraction * 30)
        rate = items / max(now - self._started, 1e-6)
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%}  {items:,} items  {rate:,.0f}/s"
        self._stream.write(f"\r{line}" if self._tty else f"{line}\n")
        self._stream.flush()

    def finish(self, done_bytes: int, items: int) -> None:
        self.update(done_bytes, items, force=True)
        if self._tty:
            self._stream.write("\n")


class JsonLinesReader:
    """Import items from a JSON Lines file, one per non-blank line, remembering each item's line."""

    def __init__(self, path: Path, progress: ProgressLine | None = None) -> None:
        self.path = path
        self.progress = progress
        self.items = 0
        self.bytes_read = 0
        self.line_of_item = array("L")  # 4-8 bytes per item: the only per-item state kept
        self.parse_errors: list[tuple[int, str]] = []

    def __iter__(self) -> Iterator[articles_pb2.ImportArticlesRequest]:
        with self.path.open("rb") as file:
            for number, raw in enumerate(file, start=1):
                self.bytes_read += len(raw)
                if not raw.strip():
                    continue
                article = articles_pb2.RawArticle()
                try:
                    document = json.loads(raw)
                    if not isinstance(document, dict):
                        raise TypeError("a line must hold a JSON object")
                    json_format.ParseDict(document, article, ignore_unknown_fields=True)
                except (ValueError, TypeError, json_format.ParseError) as error:
                    if len(self.parse_errors) < 100:
                        self.parse_errors.append((number, str(error)[:200]))
                    article = articles_pb2.RawArticle()
                self.line_of_item.append(number)
                self.items += 1
                if self.progress is not None:
                    self.progress.update(self.bytes_read, self.items)
                yield articles_pb2.ImportArticlesRequest(article=article)


def _channel(target: str, *, tls: bool, ca_file: str | None) -> grpc.Channel:
    if not tls:
        return grpc.insecure_channel(target)
    roots = Path(ca_file).read_bytes() if ca_file else None
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots))


def run_import(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Stream the file through ImportArticles; print the summary and the rejected lines. Exit code."""
    settings = with_local_secrets(settings)
    path = Path(args.file)
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"an access token is required (--token or {TOKEN_ENV})", file=sys.stderr)
        return 2
    progress = ProgressLine(path.stat().st_size) if not args.quiet else None
    reader = JsonLinesReader(path, progress)
    target = args.target or settings.address_of("articles")
    with _channel(target, tls=args.tls, ca_file=args.ca_file) as channel:
        stub = articles_pb2_grpc.ArticlesServiceStub(channel)
        try:
            response = stub.ImportArticles(iter(reader), metadata=(("authorization", f"Bearer {token}"),))
        except grpc.RpcError as error:
            print(f"\nimport failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    if progress is not None:
        progress.finish(reader.bytes_read, reader.items)
    print(f"created {response.created_count}, rejected {response.rejected_count}", file=out)
    for number, message in reader.parse_errors:
        print(f"  line {number}: not a JSON article: {message}", file=out)
    for item in response.rejected:
        line = reader.line_of_item[item.index] if item.index < len(reader.line_of_item) else "?"
        print(f"  line {line}: {item.reason}", file=out)
    return 0 if response.rejected_count == 0 else 3


def _handle_import(args: argparse.Namespace, settings: Settings) -> None:
    sys.exit(run_import(args, settings))


def register(commands: Any) -> None:
    """Add this service's subcommands; each sets `handler(args, settings)` with set_defaults."""
    articles = commands.add_parser("articles", help="articles service operations")
    actions = articles.add_subparsers(dest="articles_command", required=True)
    imports = actions.add_parser("import", help="import articles from a JSON Lines file, with progress")
    imports.add_argument("file", help="JSON Lines: one RawArticle per line (title, body, author, ...)")
    imports.add_argument("--target", default="", help="host:port of the articles service (default: settings)")
    imports.add_argument("--token", default="", help=f"access token of an admin or a service account with "
                                                     f"scope articles.import (default: ${TOKEN_ENV})")
    imports.add_argument("--tls", action="store_true", help="connect with TLS")
    imports.add_argument("--ca-file", default=None, help="PEM roots for --tls (default: system roots)")
    imports.add_argument("--quiet", action="store_true", help="no progress line")
    imports.set_defaults(handler=_handle_import)


__all__ = ["JsonLinesReader", "ProgressLine", "register", "run_import"]
