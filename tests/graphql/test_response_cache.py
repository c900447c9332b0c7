"""The response cache of anonymous queries (decision 0047): what is kept, for how long, and single flight.
No mesh: the cache and the key alone, with a clock the test moves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest

from conduit_server.graphql.domain.responses import MAX_ANSWER_BYTES, Answer, ResponseCache, key_of

QUERY = {"query": "{ tags }"}
OK = Answer(200, ((b"content-type", b"application/json"),), b'{"data": {"tags": ["a"]}}')


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Executions:
    """An `execute` that counts its calls and answers `answer`."""

    def __init__(self, answer: Answer = OK) -> None:
        self.answer = answer
        self.calls = 0

    async def __call__(self) -> Answer:
        self.calls += 1
        await asyncio.sleep(0)
        return self.answer


def _key(request: Mapping[str, Any], accept: str = "application/json") -> bytes:
    key = key_of(request, accept)
    assert key is not None
    return key


def test_only_queries_are_shared() -> None:
    assert key_of({"query": "mutation { deleteArticle(slug: \"a\") }"}, "") is None
    assert key_of({"query": "subscription { articleEvents { eventId } }"}, "") is None
    assert key_of({"query": "{ tags"}, "") is None  # a syntax error: the view answers it
    assert key_of({"query": 42}, "") is None
    assert key_of({"query": "{ tags }", "variables": [1]}, "") is None
    two = "query A { tags } mutation B { deleteArticle(slug: \"a\") }"
    assert key_of({"query": two, "operationName": "A"}, "") is not None
    assert key_of({"query": two, "operationName": "B"}, "") is None


def test_the_key_is_the_document_its_variables_operation_and_media_type() -> None:
    base = {"query": "query($t: String) { articles(tag: $t) { totalCount } }", "variables": {"t": "x"}}
    assert _key(base) == _key(json.loads(json.dumps(base)))
    assert _key(base) != _key({**base, "variables": {"t": "y"}})
    assert _key(base) != _key(base, accept="application/graphql-response+json")
    assert _key({"query": "{ tags }", "variables": None}) == _key({"query": "{ tags }", "variables": {}})


async def test_an_answer_is_shared_for_ttl_seconds_then_executed_again() -> None:
    clock, execute = Clock(), Executions()
    cache = ResponseCache(ttl=5, entries=10, clock=clock)
    assert await cache.answer(_key(QUERY), execute) == (OK, False)
    clock.now += 4.9
    assert await cache.answer(_key(QUERY), execute) == (OK, True)
    clock.now += 0.1
    assert await cache.answer(_key(QUERY), execute) == (OK, False)
    assert execute.calls == 2
    assert (cache.hits, cache.misses) == (1, 2)


@pytest.mark.parametrize("answer", [
    Answer(200, (), b'{"data": null, "errors": [{"message": "no"}]}'),
    Answer(400, (), b'{"errors": [{"message": "bad"}]}'),
    Answer(200, (), b"not json"),
    Answer(200, (), b'{"data": {"x": "' + b"a" * MAX_ANSWER_BYTES + b'"}}'),
])
async def test_errors_and_huge_answers_are_never_kept(answer: Answer) -> None:
    execute = Executions(answer)
    cache = ResponseCache(ttl=60, entries=10, clock=Clock())
    for _ in range(2):
        assert await cache.answer(_key(QUERY), execute) == (answer, False)
    assert execute.calls == 2
    assert len(cache) == 0


async def test_the_least_recently_used_answer_goes_first() -> None:
    execute = Executions()
    cache = ResponseCache(ttl=60, entries=2, clock=Clock())
    first, second, third = (_key({"query": f"{{ tags }} # {n}"}) for n in range(3))
    await cache.answer(first, execute)
    await cache.answer(second, execute)
    assert (await cache.answer(first, execute))[1]  # first is now the most recent
    await cache.answer(third, execute)
    assert len(cache) == 2
    assert (await cache.answer(first, execute))[1]
    assert not (await cache.answer(second, execute))[1]


async def test_concurrent_misses_of_one_key_are_one_execution() -> None:
    release = asyncio.Event()
    calls = 0

    async def slow() -> Answer:
        nonlocal calls
        calls += 1
        await release.wait()
        return OK

    cache = ResponseCache(ttl=60, entries=10, clock=Clock())
    waiting = [asyncio.create_task(cache.answer(_key(QUERY), slow)) for _ in range(16)]
    await asyncio.sleep(0)
    release.set()
    answers = await asyncio.gather(*waiting)
    assert calls == 1
    assert all(answer == (OK, False) for answer in answers)
    assert await cache.answer(_key(QUERY), slow) == (OK, True)


async def test_a_caller_who_goes_away_does_not_cancel_the_execution_for_the_others() -> None:
    release = asyncio.Event()

    async def slow() -> Answer:
        await release.wait()
        return OK

    cache = ResponseCache(ttl=60, entries=10, clock=Clock())
    leaving = asyncio.create_task(cache.answer(_key(QUERY), slow))
    staying = asyncio.create_task(cache.answer(_key(QUERY), slow))
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()
    assert await staying == (OK, False)
    assert leaving.cancelled()
    assert len(cache) == 1
