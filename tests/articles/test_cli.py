"""`conduit articles import FILE.jsonl`: streams a JSON Lines file through ImportArticles."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from conduit_server.articles import cli
from tests.articles.conftest import Mesh
from tests.fixtures.users import settings_for


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="conduit")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_import_command_streams_the_file_and_reports_rejected_lines(
        mesh: Mesh, tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    admin, writer = await mesh.moderator("admin"), await mesh.person("writer")
    path = tmp_path / "articles.jsonl"
    with path.open("w") as file:
        for n in range(1200):
            if n == 10:
                file.write("{not json\n")
            elif n == 20:
                file.write("\n")  # blank lines are skipped
            elif n == 30:
                file.write(json.dumps({"title": "", "body": "b", "author": writer.username}) + "\n")
            else:
                item = {"title": f"From file {n}", "body": "text " * 50, "author": writer.username,
                        "tagList": ["cli", "Import"], "createdAt": "2024-01-02T03:04:05Z"}
                file.write(json.dumps(item) + "\n")
    target = f"127.0.0.1:{mesh.app.port}"  # type: ignore[attr-defined]
    args = _parse(["articles", "import", str(path), "--target", target, "--token", admin.token, "--quiet"])
    assert args.handler is cli._handle_import  # the command is wired to its handler
    out = io.StringIO()
    settings = settings_for(postgres_url, redis_url, state_dir=tmp_path / "state")
    code = await asyncio.to_thread(cli.run_import, args, settings, out)
    report = out.getvalue().splitlines()
    assert code == 3  # some lines were rejected
    assert report[0] == "created 1197, rejected 2"
    assert report[1].startswith("  line 11: not a JSON article")
    assert "line 11: title: can't be blank" in report[2]
    assert report[3] == "  line 31: title: can't be blank"
    async with mesh.app.database.read() as session:
        stored = await session.scalar(text("SELECT count(*) FROM articles"))
    assert stored == 1197


def test_import_command_needs_a_token(tmp_path: Path, postgres_url: str, redis_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.TOKEN_ENV, raising=False)
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    args = _parse(["articles", "import", str(path), "--target", "127.0.0.1:1", "--quiet"])
    settings = settings_for(postgres_url, redis_url, state_dir=tmp_path / "state")
    assert cli.run_import(args, settings, io.StringIO()) == 2


def test_progress_line_reports_fraction_items_and_rate() -> None:
    stream = io.StringIO()
    progress = cli.ProgressLine(1000, stream, every=0.0)
    progress.update(250, 10)
    progress.finish(1000, 40)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "25.0%" in lines[0]
    assert "10 items" in lines[0]
    assert lines[1].startswith("[" + "#" * 30 + "]")
    assert "100.0%" in lines[1]
    assert "40 items" in lines[1]
