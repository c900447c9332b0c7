"""Signing keys of the users service: generation, encryption at rest, rotation, minting.

Pure logic: the repository stores `encrypt_private_key` blobs and rebuilds a
`KeyRing` from them; nothing here does I/O.

Rotation without downtime: `KeyRing.rotate` adds a new key (optionally
published ahead of use, so every JWKS cache can learn it before the first
token appears) and schedules every older key to retire once the last token it
could have signed has expired (activation + access-token TTL + clock skew).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from conduit_server.runtime.tokens import ACCESS_TOKEN_TYPE, access_token_claims

SIGNING_ALGORITHM = "EdDSA"
KEK_LENGTH = 32
_BLOB_VERSION = b"\x01"
_NONCE_LENGTH = 12
# Domain-separates the AAD and the HKDF output from any other use of the same secret.
_AAD_PREFIX = b"conduit-mesh/signing-key/v1:"
_HKDF_SALT = b"conduit-mesh/kek-salt/v1"
_HKDF_INFO = b"conduit-mesh/signing-key-encryption/v1"


class KeyDecryptionError(ValueError):
    """A stored signing key could not be decrypted: wrong KEK, corrupt or swapped blob."""


def _require_aware(now: datetime) -> datetime:
    # Naive datetimes silently mean local time; key lifetimes must not depend on the host's zone.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return now


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _raw_public(public_key: ed25519.Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def jwk_thumbprint(public_key: ed25519.Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint: a kid derived from the key, so a kid can never name two keys."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw_public(public_key))}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    return _b64url(hashlib.sha256(canonical).digest())


@dataclass(frozen=True, eq=False, repr=False)
class SigningKey:
    """One Ed25519 signing key and its lifetime.

    `activates_at`: from when it may sign. `retire_after`: until when it is
    published for verification (None = not scheduled; the current key).
    """

    kid: str
    private_key: ed25519.Ed25519PrivateKey
    created_at: datetime
    activates_at: datetime
    retire_after: datetime | None = None

    def __repr__(self) -> str:
        # Never the key itself: reprs end up in logs and tracebacks.
        return (f"SigningKey(kid={self.kid!r}, created_at={self.created_at.isoformat()}, "
                f"activates_at={self.activates_at.isoformat()}, "
                f"retire_after={self.retire_after.isoformat() if self.retire_after else None})")

    __str__ = __repr__

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self.private_key.public_key()

    def is_published(self, now: datetime) -> bool:
        return self.retire_after is None or self.retire_after > now

    def can_sign(self, now: datetime) -> bool:
        return self.activates_at <= now and self.is_published(now)


def generate_signing_key(now: datetime, *, activates_at: datetime | None = None) -> SigningKey:
    """A fresh Ed25519 key whose kid is its JWK thumbprint."""
    private_key = ed25519.Ed25519PrivateKey.generate()
    return SigningKey(kid=jwk_thumbprint(private_key.public_key()), private_key=private_key,
                      created_at=_require_aware(now), activates_at=_require_aware(activates_at or now))


def public_jwk(key: SigningKey) -> dict[str, str]:
    """The RFC 8037 public JWK of a signing key."""
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(_raw_public(key.public_key())),
            "kid": key.kid, "alg": SIGNING_ALGORITHM, "use": "sig"}


def new_kek_secret() -> str:
    """A random key-encryption secret for `Settings.key_encryption_key` (256 bits)."""
    return secrets.token_urlsafe(32)


def derive_kek(secret: str) -> bytes:
    """A 256-bit AES key from the configured secret (HKDF-SHA256, RFC 5869).

    HKDF extracts and expands but does not stretch: the secret must be
    high-entropy (see `new_kek_secret`), not a human password.
    """
    if not secret:
        raise ValueError("key-encryption secret is empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEK_LENGTH, salt=_HKDF_SALT, info=_HKDF_INFO)
    return hkdf.derive(secret.encode("utf-8"))


def _aad(kid: str) -> bytes:
    return _AAD_PREFIX + kid.encode("utf-8")


def _check_kek(kek: bytes) -> AESGCM:
    if len(kek) != KEK_LENGTH:
        raise ValueError("key-encryption key must be 32 bytes (use derive_kek)")
    return AESGCM(kek)


def encrypt_private_key(key: SigningKey, kek: bytes) -> bytes:
    """AES-256-GCM blob `version | nonce | ciphertext+tag`, bound to the kid as associated data."""
    plaintext = key.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())
    # 96-bit random nonces are safe here: a KEK encrypts a handful of keys, far below 2^32.
    nonce = os.urandom(_NONCE_LENGTH)
    return _BLOB_VERSION + nonce + _check_kek(kek).encrypt(nonce, plaintext, _aad(key.kid))


def decrypt_private_key(blob: bytes, kek: bytes, *, kid: str) -> ed25519.Ed25519PrivateKey:
    """The private key of a blob stored under `kid`; `KeyDecryptionError` if anything is off."""
    aesgcm = _check_kek(kek)
    if len(blob) <= 1 + _NONCE_LENGTH or blob[:1] != _BLOB_VERSION:
        raise KeyDecryptionError("signing key blob is malformed")
    nonce, ciphertext = blob[1:1 + _NONCE_LENGTH], blob[1 + _NONCE_LENGTH:]
    try:
        plaintext = aesgcm.decrypt(nonce, ciphertext, _aad(kid))
    except InvalidTag:
        raise KeyDecryptionError(f"signing key {kid!r} cannot be decrypted (wrong KEK or blob)") from None
    private_key = ed25519.Ed25519PrivateKey.from_private_bytes(plaintext)
    # Belt and braces: the kid is the thumbprint, so the decrypted key must hash to it.
    if jwk_thumbprint(private_key.public_key()) != kid:
        raise KeyDecryptionError(f"signing key {kid!r} does not match its id")
    return private_key


@dataclass(frozen=True)
class Rotation:
    """What `KeyRing.rotate` changed: the repository persists exactly these keys."""

    new_key: SigningKey
    scheduled: tuple[SigningKey, ...]


class KeyRing:
    """The signing keys of the users service, in memory."""

    def __init__(self, keys: Iterable[SigningKey] = (), *, access_token_ttl_seconds: int,
                 clock_skew_seconds: int = 60) -> None:
        self._keys: dict[str, SigningKey] = {key.kid: key for key in keys}
        # Tokens signed just before a switch live for one TTL, plus the verifiers' leeway.
        self._grace = timedelta(seconds=access_token_ttl_seconds + clock_skew_seconds)

    def __repr__(self) -> str:
        return f"KeyRing(kids={sorted(self._keys)!r})"

    def keys(self) -> tuple[SigningKey, ...]:
        return tuple(sorted(self._keys.values(), key=lambda key: key.activates_at))

    def current(self, now: datetime) -> SigningKey:
        """The key that signs at `now`: the most recently activated one."""
        _require_aware(now)
        candidates = [key for key in self._keys.values() if key.can_sign(now)]
        if not candidates:
            raise LookupError("no signing key is active; rotate to create one")
        return max(candidates, key=lambda key: (key.activates_at, key.created_at))

    def jwks(self, now: datetime) -> dict[str, list[dict[str, str]]]:
        """Every key not yet retired, including keys published ahead of activation."""
        _require_aware(now)
        return {"keys": [public_jwk(key) for key in self.keys() if key.is_published(now)]}

    def rotate(self, now: datetime, *, publish_ahead_seconds: float = 0.0) -> Rotation:
        """Add a key that signs from `now + publish_ahead_seconds`; schedule older keys to retire.

        Publishing ahead by at least the verifiers' JWKS max age means no
        verifier ever sees a kid it has not fetched yet.
        """
        _require_aware(now)
        has_signer = any(key.can_sign(now) for key in self._keys.values())
        # Nothing can sign yet (first key, or all retired): the new key must sign right away.
        activates_at = now + timedelta(seconds=publish_ahead_seconds) if has_signer else now
        new_key = generate_signing_key(now, activates_at=activates_at)
        retire_after = activates_at + self._grace
        scheduled = tuple(replace(key, retire_after=retire_after) for key in self._keys.values()
                          if key.retire_after is None)
        for key in scheduled:
            self._keys[key.kid] = key
        self._keys[new_key.kid] = new_key
        return Rotation(new_key=new_key, scheduled=scheduled)

    def retire_expired(self, now: datetime) -> tuple[SigningKey, ...]:
        """Drop keys past their retirement; returns them so the repository can delete them."""
        _require_aware(now)
        retired = tuple(key for key in self._keys.values() if not key.is_published(now))
        for key in retired:
            del self._keys[key.kid]
        return retired


def mint_access_token(keyring: KeyRing, *, subject: str, user_id: int | None, username: str | None,
                      roles: Iterable[str], scopes: Iterable[str], issuer: str, audience: str,
                      ttl_seconds: int, now: datetime) -> tuple[str, datetime]:
    """A signed access token (layout in `conduit_server.runtime.tokens`) and its expiry."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    key = keyring.current(now)
    issued_at_ms = int(now.timestamp() * 1000)
    issued_at = issued_at_ms // 1000
    expires_at = issued_at + ttl_seconds
    claims = access_token_claims(subject=subject, user_id=user_id, username=username, roles=roles,
                                 scopes=scopes, issuer=issuer, audience=audience, issued_at=issued_at,
                                 issued_at_ms=issued_at_ms,
                                 expires_at=expires_at, token_id=secrets.token_urlsafe(16))
    token = jwt.encode(claims, key.private_key, algorithm=SIGNING_ALGORITHM,
                       headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE})
    return token, datetime.fromtimestamp(expires_at, now.tzinfo)


__all__ = [
    "KEK_LENGTH", "SIGNING_ALGORITHM", "KeyDecryptionError", "KeyRing", "Rotation", "SigningKey",
    "decrypt_private_key", "derive_kek", "encrypt_private_key", "generate_signing_key", "jwk_thumbprint",
    "mint_access_token", "new_kek_secret", "public_jwk",
]
