"""Slugs: URL-safe names made from titles. Pure functions, no I/O."""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
from collections.abc import Iterator

# Room is left under the column's 300 characters for a collision suffix.
MAX_BASE_LENGTH = 200
SUFFIX_LENGTH = 6
# Used when a title has no ASCII letters or digits at all (say, only CJK or emoji).
FALLBACK_BASE = "article"
# Slugs that would shadow a fixed route of the REST surface (`GET /api/articles/feed`).
RESERVED = frozenset({"feed"})

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_ALPHABET = string.ascii_lowercase + string.digits


def slugify(title: str) -> str:
    """The base slug of a title: ASCII-folded, lower case, words joined by hyphens."""
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", folded.lower()).strip("-")
    if len(slug) > MAX_BASE_LENGTH:
        cut = slug[:MAX_BASE_LENGTH + 1]
        # Cut at a word boundary when there is one in the second half, else hard.
        boundary = cut.rfind("-")
        slug = cut[:boundary] if boundary > MAX_BASE_LENGTH // 2 else slug[:MAX_BASE_LENGTH]
        slug = slug.rstrip("-")
    return slug or FALLBACK_BASE


def with_suffix(base: str, length: int = SUFFIX_LENGTH) -> str:
    """`base` plus a random suffix, for when `base` is taken (36**6 ≈ 2·10⁹ suffixes)."""
    return f"{base}-{''.join(secrets.choice(_ALPHABET) for _ in range(length))}"


def candidates(title: str, attempts: int) -> Iterator[str]:
    """Slugs to try in order: the plain slug (unless reserved), then random suffixes (drawn lazily:
    the first candidate is almost always free)."""
    base = slugify(title)
    if base not in RESERVED:
        yield base
        attempts -= 1
    for _ in range(attempts):
        yield with_suffix(base)
