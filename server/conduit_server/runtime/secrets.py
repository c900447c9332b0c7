"""Local secrets for a developer machine: generated once into the state directory (mode 0600).

Production passes CONDUIT_KEY_ENCRYPTION_KEY and CONDUIT_INTERNAL_TOKEN; nothing
here runs then.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from conduit_server.runtime.settings import Settings


def with_local_secrets(settings: Settings) -> Settings:
    """`settings` with any missing secret filled from (or generated into) state_dir/secrets.json."""
    if settings.key_encryption_key.get_secret_value() and settings.internal_token.get_secret_value():
        return settings
    path = Path(settings.state_dir) / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name in ("key_encryption_key", "internal_token"):
        if not stored.get(name):
            stored[name] = secrets.token_urlsafe(32)
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(stored, file)
    updates = {name: SecretStr(stored[name]) for name in ("key_encryption_key", "internal_token")
               if not getattr(settings, name).get_secret_value()}
    return settings.model_copy(update=updates)
