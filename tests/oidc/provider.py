"""The test OpenID Provider (`provider.mjs`, panva's oidc-provider): installed with `npm ci` from the
committed lock file into ~/.cache/conduit (once per lock), started on a loopback port.

`python -m tests.oidc.provider` installs it (`make oidc-provider`, a prerequisite of `make test`).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
LOCK = HERE / "package-lock.json"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "conduit"


def install_dir() -> Path:
    digest = hashlib.sha256(LOCK.read_bytes() + (HERE / "package.json").read_bytes()).hexdigest()[:16]
    return CACHE / f"oidc-provider-{digest}"


def ensure_installed() -> Path:
    """The node_modules holding oidc-provider, installed exactly as locked when missing."""
    target = install_dir()
    modules = target / "node_modules"
    if (modules / "oidc-provider" / "package.json").exists():
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install the test OpenID Provider")
    CACHE.mkdir(parents=True, exist_ok=True)
    # Installed aside and renamed into place: a parallel run never sees half an install.
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".oidc-install-") as scratch:
        work = Path(scratch) / "provider"
        work.mkdir()
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(HERE / name, work / name)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work, check=True)
        try:
            work.rename(target)
        except OSError:
            if not (modules / "oidc-provider" / "package.json").exists():
                raise
    return modules


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    redirect_uris: Sequence[str]


@dataclass(frozen=True)
class RunningProvider:
    issuer: str

    def next_id_token(self, **claims: object) -> None:
        """Make the next token response carry an ID token with `claims` changed (real key)."""
        answer = httpx.post(f"{self.issuer}/test/next-id-token", json=claims, timeout=10)
        answer.raise_for_status()


@contextmanager
def oidc_provider(port: int, clients: Sequence[Client]) -> Iterator[RunningProvider]:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed to run the test OpenID Provider")
    env = {**os.environ, "OIDC_MODULES": str(ensure_installed()), "OIDC_PORT": str(port),
           "OIDC_CLIENTS": json.dumps([{"client_id": c.client_id, "client_secret": c.client_secret,
                                        "redirect_uris": list(c.redirect_uris)} for c in clients])}
    process = subprocess.Popen([node, str(HERE / "provider.mjs")], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    seen: list[str] = []
    try:
        for line in process.stdout:  # ends when the script exits
            seen.append(line)
            if line.startswith("listening "):
                break
        else:
            raise RuntimeError("the OpenID Provider did not start:\n" + "".join(seen))
        # Whatever it prints later is read, so that a full pipe never blocks it.
        threading.Thread(target=collections.deque, args=(process.stdout, 100), daemon=True).start()
        yield RunningProvider(issuer=line.split(" ", 1)[1].strip())
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    print("test OpenID Provider installed in", ensure_installed())
