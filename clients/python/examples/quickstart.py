r"""Conduit SDK quickstart (blocking client): sign up, log in, publish, page, comment, favorite.

Run against a mesh (`make run` prints the target and the local CA):

    CONDUIT_TARGET=localhost:8443 CONDUIT_CA_FILE=.state/tls/ca.pem \
        python clients/python/examples/quickstart.py

`CONDUIT_TLS=0` talks plaintext (e.g. to a service port). Exits 0 on success.
"""

from __future__ import annotations

import os
import sys
import uuid

from conduit.client import Conduit, ConduitError, InvalidArgument, PasswordCredentials


def main() -> int:
    target = os.environ.get("CONDUIT_TARGET", "localhost:8443")
    tls = os.environ.get("CONDUIT_TLS", "1").lower() not in ("0", "false", "no")
    ca_file = os.environ.get("CONDUIT_CA_FILE") if tls else None
    suffix = uuid.uuid4().hex[:10]
    email, password = f"sdk-{suffix}@example.com", f"pw-{suffix}-secret"

    # Anonymous client: register a new account.
    with Conduit.connect(target, tls=tls, ca_file=ca_file) as anonymous:
        user = anonymous.users.register(username=f"sdk_{suffix}", email=email, password=password)
        print(f"registered {user.username}")
        try:
            anonymous.users.register(username=f"sdk_{suffix}", email=email, password=password)
        except InvalidArgument as error:  # AlreadyExists is an InvalidArgument, as in RealWorld (422)
            print(f"second registration refused: {error.errors}")

    # Signed-in client: logs in once, then refreshes its token before it expires.
    with Conduit.connect(target, tls=tls, ca_file=ca_file,
                         credentials=PasswordCredentials(email, password)) as conduit:
        me = conduit.users.me()
        print(f"signed in as {me.username}")

        tag = f"sdk-{suffix}"
        slugs = [conduit.articles.create(title=f"SDK article {i} {suffix}", description="Made by the SDK",
                                         body=f"Body number {i}.", tags=[tag, "python"]).slug
                 for i in range(3)]
        print(f"created {len(slugs)} articles")

        # A pager: two per page, fetched as the loop goes.
        listed = [summary.slug for summary in conduit.articles.list(tag=tag, page_size=2)]
        if sorted(listed) != sorted(slugs):
            print(f"unexpected listing: {listed}", file=sys.stderr)
            return 1
        pages = list(conduit.articles.list(author=me.username, page_size=2).pages())
        print(f"listed {len(listed)} articles; by author: {pages[0].articles_count} in {len(pages)} pages")

        comment = conduit.comments.add(slugs[0], body="First!")
        comments = conduit.comments.list(slugs[0])
        favorited = conduit.articles.favorite(slugs[0])
        print(f"commented ({comment.id}) and favorited: count={favorited.favorites_count}")

        article = conduit.articles.get(slugs[0])
        if [c.id for c in comments] != [comment.id] or not article.favorited or article.favorites_count != 1:
            print(f"unexpected state: comments={comments} article={article}", file=sys.stderr)
            return 1
        print(f"tags in use include ours: {tag in conduit.tags.list()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConduitError as error:
        print(f"failed: {error}", file=sys.stderr)
        sys.exit(1)
