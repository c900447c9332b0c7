"""Strings that cannot be stored (U+0000, not UTF-8) are a 422 naming the field, for every RPC.

The check is the interceptor chain's (runtime.text, ValidationStage), before any handler: here
every service of the contract is served by its generated base servicer (which would answer
UNIMPLEMENTED), with the real chain, and called as an authorised caller with such a string in
each of its string fields in turn. The real users and articles services get the same property
test in tests/articles/test_unstorable_text.py.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from conduit.articles.v1 import articles_pb2
from conduit.users.v1 import users_pb2
from conduit_server.runtime.interceptors import INTERNAL_TOKEN_KEY
from conduit_server.runtime.server import Binding
from conduit_server.runtime.text import INVALID_CHARACTER, undecodable_field, unstorable_fields
from conduit_server.runtime.tokens import AccessTokenVerifier
from tests.text_cases import StringField, call_raw, request_bytes, services, string_fields, violations

from .conftest import INTERNAL_TOKEN, StaticApp, serving

# Client streams are checked item by item as the handler reads them (a base servicer reads none):
# the real ImportArticles is in tests/articles/test_unstorable_text.py.
FIELDS = [field for field in string_fields() if not field.method.client_streaming]


def test_every_service_has_string_fields_to_check() -> None:
    checked = {field.method.containing_service.full_name for field in FIELDS}

    assert {"conduit.users.v1.UsersService", "conduit.articles.v1.ArticlesService",
            "conduit.search.v1.SearchService", "conduit.realtime.v1.RealtimeService"} <= checked
    assert any(len(field.path) > 1 for field in FIELDS)  # nested fields too


def test_nul_is_found_in_nested_repeated_and_map_fields() -> None:
    request = articles_pb2.CreateArticleRequest(article=articles_pb2.NewArticle(
        title="ok", body="b\x00", tag_list=["fine", "bad\x00"]))

    assert list(unstorable_fields(request)) == ["article.body", "article.tag_list"]
    assert list(unstorable_fields(users_pb2.LoginRequest(user=users_pb2.LoginUser(email="a@b.c")))) == []


def test_bytes_that_are_not_utf8_are_traced_to_their_field() -> None:
    login = StringField(users_pb2.DESCRIPTOR.services_by_name["UsersService"].methods_by_name["Login"],
                        ("user", "email"))

    data = request_bytes(login, "", surrogate=True)

    assert undecodable_field(users_pb2.LoginRequest.DESCRIPTOR, data) == "user.email"
    assert undecodable_field(users_pb2.LoginRequest.DESCRIPTOR, b"\xff\xff") is None


def _bindings() -> list[Binding]:
    bindings = []
    for service in services():
        module = importlib.import_module(service.file.name.replace("/", ".").removesuffix(".proto") + "_pb2_grpc")
        servicer = getattr(module, f"{service.name}Servicer")()
        bindings.append(Binding(service, getattr(module, f"add_{service.name}Servicer_to_server"), servicer))
    return bindings


@pytest_asyncio.fixture(loop_scope="session")
async def port(verifier: AccessTokenVerifier) -> AsyncIterator[int]:
    async with serving(StaticApp(_bindings()), verifier) as (server, _):
        yield server.port


def _everything(mint: Callable[..., str]) -> list[tuple[str, str]]:
    """A user with every role of the contract, and the internal token: every rule passes."""
    return [("authorization", f"Token {mint(roles=['user', 'admin', 'moderator'])}"),
            (INTERNAL_TOKEN_KEY, INTERNAL_TOKEN)]


@pytest.mark.parametrize("surrogate", [False, True], ids=["nul", "surrogate"])
async def test_every_string_field_of_every_rpc_refuses_what_cannot_be_stored(
        port: int, mint: Callable[..., str], surrogate: bool) -> None:
    metadata = _everything(mint)

    @settings(max_examples=300, deadline=None)
    @given(field=st.sampled_from(FIELDS), before=st.text(max_size=20), after=st.text(max_size=20))
    def refused(channel: grpc.Channel, field: StringField, before: str, after: str) -> None:
        text = (before + "\x00" + after).encode("utf-8", "replace").decode()
        error = call_raw(channel, field, request_bytes(field, text, surrogate=surrogate), metadata)

        assert error is not None, f"{field} accepted {text!r}"
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, error.details())
        assert violations(error) == [(field.dotted, INVALID_CHARACTER)]

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.to_thread(refused, channel)


async def test_a_clean_request_still_reaches_the_handler(port: int, mint: Callable[..., str]) -> None:
    field = next(f for f in FIELDS if f.rpc.endswith("/GetProfile"))

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        error = await asyncio.to_thread(call_raw, channel, field, request_bytes(field, "jake"),
                                        _everything(mint))

    assert error is not None
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED  # the base servicer: the chain let it through
