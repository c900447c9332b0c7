r"""Conduit SDK quickstart (asyncio client): sign up, log in, publish, page, comment, favorite.

    CONDUIT_TARGET=localhost:8443 CONDUIT_CA_FILE=.state/tls/ca.pem \
        python clients/python/examples/quickstart_async.py

`CONDUIT_TLS=0` talks plaintext. Exits 0 on success.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from conduit.client import AsyncConduit, ConduitError, InvalidArgument, PasswordCredentials


async def main() -> int:
    target = os.environ.get("CONDUIT_TARGET", "localhost:8443")
    tls = os.environ.get("CONDUIT_TLS", "1").lower() not in ("0", "false", "no")
    ca_file = os.environ.get("CONDUIT_CA_FILE") if tls else None
    suffix = uuid.uuid4().hex[:10]
    email, password = f"sdk-{suffix}@example.com", f"pw-{suffix}-secret"

    async with await AsyncConduit.connect(target, tls=tls, ca_file=ca_file) as anonymous:
        user = await anonymous.users.register(username=f"sdk_{suffix}", email=email, password=password)
        print(f"registered {user.username}")
        try:
            await anonymous.users.register(username=f"sdk_{suffix}", email=email, password=password)
        except InvalidArgument as error:  # AlreadyExists is an InvalidArgument, as in RealWorld (422)
            print(f"second registration refused: {error.errors}")

        # The same channel, signed in: logs in now, refreshes the token before it expires.
        conduit = await anonymous.with_auth(credentials=PasswordCredentials(email, password))
        me = await conduit.users.me()
        print(f"signed in as {me.username}")

        tag = f"sdk-{suffix}"
        created = await asyncio.gather(*(
            conduit.articles.create(title=f"SDK article {i} {suffix}", description="Made by the SDK",
                                    body=f"Body number {i}.", tags=[tag, "python"])
            for i in range(3)))
        slugs = [article.slug for article in created]
        print(f"created {len(slugs)} articles concurrently")

        listed = [summary.slug async for summary in conduit.articles.list(tag=tag, page_size=2)]
        if sorted(listed) != sorted(slugs):
            print(f"unexpected listing: {listed}", file=sys.stderr)
            return 1
        pages = [page async for page in conduit.articles.list(author=me.username, page_size=2).pages()]
        print(f"listed {len(listed)} articles; by author: {pages[0].articles_count} in {len(pages)} pages")

        comment = await conduit.comments.add(slugs[0], body="First!")
        comments = await conduit.comments.list(slugs[0])
        favorited = await conduit.articles.favorite(slugs[0])
        print(f"commented ({comment.id}, {len(comments)} in all) and favorited: "
              f"count={favorited.favorites_count}")
        if not (favorited.favorited and [c.id for c in comments] == [comment.id]):
            print("unexpected comment or favorite state", file=sys.stderr)
            return 1
        await conduit.sign_out()  # revokes the session's refresh token
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except ConduitError as error:
        print(f"failed: {error}", file=sys.stderr)
        sys.exit(1)
