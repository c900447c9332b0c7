"""Signing secrets at rest: AES-256-GCM under a key derived from the mesh's key-encryption secret.

Receivers need the secret itself (HMAC), so it cannot be hashed like a password; a copy of the
database alone does not let anyone sign as the mesh. Each sealed value is bound to its endpoint id
(associated data): a secret moved to another row does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "v1:"
_NONCE = 12
_INFO = b"conduit-mesh webhook signing secrets"


class SealedSecretError(ValueError):
    """A stored secret that does not open (another key-encryption secret, or a tampered row)."""


class Sealer:
    def __init__(self, key_encryption_secret: str) -> None:
        if not key_encryption_secret:
            raise ValueError("the key-encryption secret is empty")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            key_encryption_secret.encode())
        self._aead = AESGCM(key)

    def seal(self, secret: str, endpoint_id: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, secret.encode(), endpoint_id.encode())
        return _PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, endpoint_id: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise SealedSecretError(f"secret of {endpoint_id} is not sealed")
        raw = base64.b64decode(sealed.removeprefix(_PREFIX))
        try:
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], endpoint_id.encode()).decode()
        except InvalidTag:
            raise SealedSecretError(f"secret of {endpoint_id} does not open with this key") from None
