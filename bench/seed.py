"""A realistic data set, seeded through the public interfaces: users and follows through the SDK,
articles through bulk import (ImportArticles, as a service account), favorites and comments."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from conduit.articles.v1 import articles_pb2
from conduit.client import AsyncConduit

PASSWORD = "bench-password-1"  # noqa: S105 - the seeded accounts' shared password
TAGS = [f"tag{n}" for n in range(40)]


@dataclass
class SeedSize:
    users: int = 1000
    follows_per_user: int = 10
    articles: int = 10_000
    favorites: int = 5_000
    comments: int = 5_000


@dataclass
class Seeded:
    usernames: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    slugs: list[str] = field(default_factory=list)
    service_token: str = ""


def create_service_account(env: dict[str, str]) -> tuple[str, str]:
    """Run the operator CLI as an operator would; parse the one-time secret it prints."""
    output = subprocess.run(
        [sys.executable, "-m", "conduit_server", "service-accounts", "create", "--name", "bench",
         "--scope", "articles.import"], env=env, capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in output.splitlines() if ":" in line)
    return fields["client_id"].strip(), fields["client_secret"].strip()


async def _bounded(limit: int, jobs: Iterator[asyncio.Future[object]] | list[object]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: object) -> None:
        async with semaphore:
            await job  # type: ignore[misc]

    await asyncio.gather(*(run(job) for job in jobs))


def _raw_articles(count: int, usernames: list[str], rng: random.Random) -> Iterator[articles_pb2.RawArticle]:
    for n in range(count):
        words = " ".join(rng.choice(["grpc", "envoy", "python", "mesh", "stream", "cache", "latency"])
                         for _ in range(120))
        yield articles_pb2.RawArticle(
            title=f"Bench article {n} about {rng.choice(TAGS)}", description=f"Summary of article {n}",
            body=words, tag_list=rng.sample(TAGS, 3), author=rng.choice(usernames))


async def seed(target: str, ca_file: str, env: dict[str, str], size: SeedSize, *,
               rng_seed: int = 7) -> Seeded:
    rng = random.Random(rng_seed)  # noqa: S311 - a reproducible data set, not a secret
    result = Seeded()
    async with await AsyncConduit.connect(target, ca_file=ca_file, timeout=60) as anonymous:
        async def register(n: int) -> None:
            user = await anonymous.users.register(username=f"bench{n}", email=f"bench{n}@example.com",
                                                  password=PASSWORD)
            result.usernames.append(user.username)
            result.tokens.append(user.token)

        await _bounded(8, [register(n) for n in range(size.users)])
        client_id, secret = create_service_account(env)
        result.service_token = (await anonymous.auth.create_oauth_token(
            client_id=client_id, client_secret=secret, scopes=["articles.import"])).access_token
    async with await AsyncConduit.connect(target, ca_file=ca_file, token=result.service_token,
                                          timeout=600) as service:
        outcome = await service.articles.import_articles(_raw_articles(size.articles, result.usernames, rng))
        if outcome.rejected_count:
            raise RuntimeError(f"seed import rejected {outcome.rejected_count} articles")
        result.slugs = [a.slug async for a in service.articles.list(page_size=100)][: size.articles]

    async def as_user(index: int) -> AsyncConduit:
        return await AsyncConduit.connect(target, ca_file=ca_file, token=result.tokens[index], timeout=60)

    clients = [await as_user(i) for i in range(min(size.users, 50))]
    try:
        # Client i is user i; it follows the next `follows_per_user` users (never itself).
        follows = [clients[i].profiles.follow(result.usernames[(i + k) % len(result.usernames)])
                   for i in range(len(clients)) for k in range(1, size.follows_per_user + 1)]
        favorites = [clients[i % len(clients)].articles.favorite(rng.choice(result.slugs))
                     for i in range(size.favorites)]
        comments = [clients[i % len(clients)].comments.add(rng.choice(result.slugs), body=f"Comment {i}")
                    for i in range(size.comments)]
        await _bounded(16, [*follows, *favorites, *comments])
    finally:
        for client in clients:
            await client.close()
    return result
