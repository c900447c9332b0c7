"""Opaque refresh tokens and OAuth2 client secrets: generation, hashing at rest, comparison.

Both are 256-bit random secrets, stored only as SHA-256 digests. No salt and no
slow hash: those defend low-entropy secrets (passwords) against guessing, and
nobody can guess 2^256 values. A fast unsalted digest also lets the repository
look a token up by its hash with an index.

The prefixes (`crt_`, `cst_`) let secret scanners (GitHub push protection,
gitleaks) recognise a leaked secret, and make a misplaced one obvious in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

REFRESH_TOKEN_PREFIX = "crt_"  # noqa: S105 - a public prefix, not a secret
CLIENT_SECRET_PREFIX = "cst_"  # noqa: S105 - a public prefix, not a secret
CLIENT_ID_PREFIX = "sa_"
_SECRET_BYTES = 32  # 256 bits of entropy
# token_urlsafe(32) is 43 characters; anything much longer is not ours and is not worth hashing.
_MAX_SECRET_LENGTH = 128


def _sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _digests_match(presented: str, stored_hash: str) -> bool:
    # Constant-time: the comparison time must not tell an attacker how many leading characters matched.
    return hmac.compare_digest(_sha256_hex(presented).encode("ascii"), stored_hash.encode("ascii", "replace"))


def new_refresh_token() -> tuple[str, str]:
    """A fresh refresh token and its hash: hand out the first, store only the second."""
    token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
    return token, hash_refresh_token(token)


def is_well_formed_refresh_token(token: str) -> bool:
    """Cheap shape check before a database look-up."""
    return token.startswith(REFRESH_TOKEN_PREFIX) and len(token) <= _MAX_SECRET_LENGTH


def hash_refresh_token(token: str) -> str:
    """The at-rest form of a refresh token: SHA-256, lowercase hex."""
    return _sha256_hex(token)


def refresh_token_matches(token: str, stored_hash: str) -> bool:
    """Whether `token` hashes to `stored_hash`, compared in constant time."""
    return _digests_match(token, stored_hash)


def new_family_id() -> str:
    """Id shared by every refresh token descended from one login (reuse revokes the family)."""
    return str(uuid.uuid4())


def new_client_id() -> str:
    """A public service-account client id; the principal subject becomes `sa:<client_id>`."""
    return CLIENT_ID_PREFIX + secrets.token_hex(8)


def new_client_secret() -> tuple[str, str]:
    """A fresh client secret and its hash: show the first once, store only the second."""
    secret = CLIENT_SECRET_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
    return secret, hash_client_secret(secret)


def hash_client_secret(secret: str) -> str:
    """The at-rest form of a client secret: SHA-256, lowercase hex."""
    return _sha256_hex(secret)


def verify_client_secret(secret: str, stored_hash: str) -> bool:
    """Whether `secret` belongs to `stored_hash`, compared in constant time."""
    if len(secret) > _MAX_SECRET_LENGTH:
        return False
    return _digests_match(secret, stored_hash)


__all__ = [
    "CLIENT_ID_PREFIX", "CLIENT_SECRET_PREFIX", "REFRESH_TOKEN_PREFIX", "hash_client_secret",
    "hash_refresh_token", "is_well_formed_refresh_token", "new_client_id", "new_client_secret",
    "new_family_id", "new_refresh_token", "refresh_token_matches", "verify_client_secret",
]
