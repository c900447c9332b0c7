"""The two README commands' promise: `make run` serves the mesh, Ctrl-C leaves nothing behind,
and a second run keeps the first run's data."""

from __future__ import annotations

import asyncio
import signal
import ssl
from pathlib import Path

import asyncpg
import grpc
import httpx
import psutil
import pytest

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc

from .conftest import conduit_run, mesh_ports

pytestmark = pytest.mark.e2e


def _database_url(state_dir: Path) -> str:
    return f"postgresql://postgres@/conduit?host={state_dir / 'postgres'}"


async def _add_tagged_article(state_dir: Path, tag: str) -> None:
    connection = await asyncpg.connect(_database_url(state_dir))
    try:
        article_id = await connection.fetchval(
            "INSERT INTO articles.articles (slug, title, description, body, author_id) "
            "VALUES ('kept', 'Kept', 'd', 'b', 1) RETURNING id")
        tag_id = await connection.fetchval("INSERT INTO articles.tags (name) VALUES ($1) RETURNING id", tag)
        await connection.execute("INSERT INTO articles.article_tags VALUES ($1, $2, 0)", article_id, tag_id)
    finally:
        await connection.close()


def test_run_serves_tags_over_rest_and_grpc_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    with conduit_run(tmp_path / "state", mesh_ports()) as mesh:
        assert f"https://localhost:{mesh.ports['GATEWAY_TLS_PORT']}/api" in mesh.banner
        answer = httpx.get(f"{mesh.http}/api/tags")
        assert (answer.status_code, answer.json()) == (200, {"tags": []})
        answer = httpx.get(f"{mesh.https}/api/tags", verify=ssl.create_default_context(cafile=mesh.ca))
        assert (answer.status_code, answer.json()) == (200, {"tags": []})
        credentials = grpc.ssl_channel_credentials(mesh.ca.read_bytes())
        with grpc.secure_channel(f"localhost:{mesh.ports['GATEWAY_TLS_PORT']}", credentials) as channel:
            tags = articles_pb2_grpc.TagsServiceStub(channel).ListTags(articles_pb2.ListTagsRequest(), timeout=10)
        assert list(tags.tags) == []
        tree = mesh.descendants()
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        for part in ("serve users", "serve articles", "serve search", "serve realtime", "serve webhooks",
                     "graphql serve", "envoy", "postgres", "redis-server"):
            assert part in names
        mesh.process.send_signal(signal.SIGINT)
        assert mesh.process.wait(60) == 0
        _, alive = psutil.wait_procs(tree, timeout=15)
    assert alive == []


def test_second_run_keeps_the_data_of_the_first(tmp_path: Path) -> None:
    state_dir, ports = tmp_path / "state", mesh_ports()
    with conduit_run(state_dir, ports) as mesh:
        asyncio.run(_add_tagged_article(state_dir, "persisted"))
        assert httpx.get(f"{mesh.http}/api/tags").json() == {"tags": ["persisted"]}
    with conduit_run(state_dir, ports) as mesh:
        assert httpx.get(f"{mesh.http}/api/tags").json() == {"tags": ["persisted"]}
