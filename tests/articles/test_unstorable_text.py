"""No string a client sends makes the real users or articles service fail with INTERNAL.

U+0000 (PostgreSQL refuses it in text) and bytes that are not UTF-8 (an unpaired surrogate)
in any string field of any RPC: hypothesis draws the RPC, the field and the text around the
character, and the call must end in INVALID_ARGUMENT naming that field, never INTERNAL, for a
caller allowed to make the call (an admin with the internal token). ImportArticles, a client
stream, reports such an item as rejected and goes on.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conduit.articles.v1 import articles_pb2
from conduit.users.v1 import users_pb2
from conduit_server.runtime.interceptors import INTERNAL_TOKEN_KEY
from conduit_server.runtime.text import INVALID_CHARACTER
from tests.fixtures.users import INTERNAL_TOKEN
from tests.support import details
from tests.text_cases import StringField, call_raw, request_bytes, string_fields, violations

from .conftest import Mesh

FIELDS = string_fields((users_pb2.DESCRIPTOR, articles_pb2.DESCRIPTOR))


@pytest.mark.parametrize("surrogate", [False, True], ids=["nul", "surrogate"])
async def test_no_string_in_any_field_of_any_rpc_is_an_internal_error(mesh: Mesh, surrogate: bool) -> None:
    admin = await mesh.moderator("admin")
    metadata = [*admin.auth, (INTERNAL_TOKEN_KEY, INTERNAL_TOKEN)]
    users = grpc.insecure_channel(mesh.users.address)
    articles = grpc.insecure_channel(f"127.0.0.1:{mesh.app.port}")  # type: ignore[attr-defined]

    @settings(max_examples=250, deadline=None)
    @given(field=st.sampled_from(FIELDS), before=st.text(max_size=12), after=st.text(max_size=12))
    def refused(field: StringField, before: str, after: str) -> None:
        text = (before + "\x00" + after).encode("utf-8", "replace").decode()
        channel = users if field.rpc.startswith("/conduit.users.") else articles
        error = call_raw(channel, field, request_bytes(field, text, surrogate=surrogate), metadata)

        if field.method.client_streaming:  # ImportArticles: the item is rejected, the stream goes on
            assert error is None, (field, error)
            return
        assert error is not None, f"{field} accepted {text!r}"
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, error.code(), error.details())
        assert (field.dotted, INVALID_CHARACTER) in violations(error)

    try:
        await asyncio.to_thread(refused)
    finally:
        users.close()
        articles.close()


@pytest.mark.parametrize("name", ["author", "tag", "favorited"])
async def test_nul_in_an_article_filter_is_invalid_argument_naming_it(mesh: Mesh, name: str) -> None:
    request = articles_pb2.ListArticlesRequest()
    setattr(request, name, "\x00")
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await mesh.articles.ListArticles(request)

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.description) for v in details(failure.value)["BadRequest"].field_violations] == [
        (name, INVALID_CHARACTER)]


async def test_nul_in_a_login_email_is_invalid_argument_naming_it(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await mesh.users.users.Login(users_pb2.LoginRequest(user=users_pb2.LoginUser(
            email="jake\x00@jake.jake", password="jakejake")))

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details(failure.value)["BadRequest"].field_violations] == ["user.email"]


async def test_an_import_item_with_nul_is_rejected_alone(mesh: Mesh) -> None:
    admin = await mesh.moderator("admin")

    async def items() -> object:
        for title in ("fine title", "bad\x00title"):
            yield articles_pb2.ImportArticlesRequest(article=articles_pb2.RawArticle(
                title=title, description="d", body="b", author=admin.username))

    response = await mesh.articles.ImportArticles(items(), metadata=admin.auth)  # type: ignore[arg-type]

    assert response.created_count == 1
    assert [(r.index, r.reason) for r in response.rejected] == [(1, f"article.title: {INVALID_CHARACTER}")]
