"""Every list and every single item fits every transport limit by construction.

The largest item a response can carry is computed from the contract's own validation rules
(each string at its `max_len`, each list at its `max_items`) and printed at its worst: 6 JSON
bytes per character (`\\u003c` for `<`; the gRPC form is at most 4 UTF-8 bytes). A page of
them, at the page maximum the services enforce, must stay within half of the smaller of the
services' gRPC message limit and the gateway's transcoder buffer. Raising a `max_len` or a page
maximum past that fails here, not in front of a reader.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from conduit_gateway.descriptors import Contract, field_rules
from conduit_gateway.limits import EdgeLimits
from conduit_server.articles.domain.pages import ARTICLES_PAGE, COMMENTS_PAGE
from conduit_server.articles.repository.tags import POPULAR_TAGS
from conduit_server.runtime.server import MAX_MESSAGE_BYTES

from .support import DESCRIPTOR_SET

BYTES_PER_CHARACTER = 6
# Keys, quotes, commas, numbers, booleans and timestamps of one JSON object: generous.
OBJECT_OVERHEAD = 512
BUDGET = min(MAX_MESSAGE_BYTES, EdgeLimits().max_response_body_bytes) // 2


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load(DESCRIPTOR_SET)


def _max_len(contract: Contract, field: str) -> int:
    """`max_len` of `pkg.Message.field` (of its items, for a repeated field)."""
    message, _, name = field.rpartition(".")
    rules = field_rules(contract.message(message).fields_by_name[name])
    assert rules is not None, f"{field} has no rules: nothing bounds it"
    string = rules.repeated.items.string if rules.HasField("repeated") else rules.string
    assert string.HasField("max_len"), f"{field} has no max_len"
    return string.max_len


def _max_items(contract: Contract, field: str) -> int:
    message, _, name = field.rpartition(".")
    rules = field_rules(contract.message(message).fields_by_name[name])
    assert rules is not None, f"{field} has no rules"
    assert rules.repeated.HasField("max_items"), f"{field} has no max_items"
    return rules.repeated.max_items


def _largest(contract: Contract, strings: Mapping[str, str], lists: Mapping[str, str] = {}) -> int:
    """JSON bytes of the largest object whose strings are bounded by the rules of `strings`
    (printed field -> the input field whose rules bound it) and lists by `lists`."""
    size = OBJECT_OVERHEAD
    for source in strings.values():
        size += _max_len(contract, source) * BYTES_PER_CHARACTER
    for source in lists.values():
        size += _max_items(contract, source) * (_max_len(contract, source) * BYTES_PER_CHARACTER + 3)
    return size


def _profile(contract: Contract) -> int:
    return _largest(contract, {"username": "conduit.users.v1.UpdateUser.username",
                               "bio": "conduit.users.v1.UpdateUser.bio",
                               "image": "conduit.users.v1.UpdateUser.image"})


def _summary(contract: Contract) -> int:
    return _profile(contract) + _largest(
        contract, {"slug": "conduit.articles.v1.GetArticleRequest.slug",
                   "title": "conduit.articles.v1.NewArticle.title",
                   "description": "conduit.articles.v1.NewArticle.description"},
        {"tagList": "conduit.articles.v1.NewArticle.tag_list"})


def test_a_page_of_the_largest_article_summaries_fits(contract: Contract) -> None:
    assert ARTICLES_PAGE.maximum * _summary(contract) <= BUDGET


def test_a_page_of_the_largest_comments_fits(contract: Contract) -> None:
    comment = _profile(contract) + _largest(contract, {"body": "conduit.articles.v1.NewComment.body"})

    assert COMMENTS_PAGE.maximum * comment <= BUDGET


def test_the_largest_single_article_fits(contract: Contract) -> None:
    article = _summary(contract) + _largest(contract, {"body": "conduit.articles.v1.NewArticle.body"})

    assert article <= BUDGET


def test_the_popular_tags_fit(contract: Contract) -> None:
    tag = _max_len(contract, "conduit.articles.v1.NewArticle.tag_list") * BYTES_PER_CHARACTER + 3

    assert POPULAR_TAGS * tag <= BUDGET


def test_the_defaults_are_within_the_maxima() -> None:
    assert 1 <= ARTICLES_PAGE.default <= ARTICLES_PAGE.maximum
    assert 1 <= COMMENTS_PAGE.default <= COMMENTS_PAGE.maximum
