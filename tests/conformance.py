"""`make conformance`: the official RealWorld API test collection, run by newman against a mesh
started here (`conduit run` on free ports, a fresh state directory, HTTPS with the local CA).

    python -m tests.conformance --newman PATH [--collection FILE]

The collection is `$REALWORLD_DIR/Conduit.postman_collection.json`, else
`../shared/realworld/Conduit.postman_collection.json` beside the clone, else the pinned upstream
file downloaded into ~/.cache/conduit (checked against its SHA-256). Every assertion must pass;
the exit status says whether they did, and the last line how many there were.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx

from tests.contract.support import realworld_dir
from tests.e2e.conftest import conduit_run, mesh_ports

COLLECTION = "Conduit.postman_collection.json"
# gothinkster/realworld at 747190e (api/ unchanged since 1fcad4a): the copy in ../shared/realworld.
UPSTREAM_COMMIT = "747190ecf0bb27d461cf1100f6cb3468c6c914ed"
UPSTREAM_SHA256 = "d6e9a7e5ea83e60afff7e1ed171995e268d9be1486d2616475c995f0cdfea8b1"
UPSTREAM_URL = f"https://raw.githubusercontent.com/gothinkster/realworld/{UPSTREAM_COMMIT}/api/{COLLECTION}"
CACHE = Path.home() / ".cache" / "conduit" / "realworld" / UPSTREAM_COMMIT / COLLECTION


def collection_path() -> Path:
    """The collection from REALWORLD_DIR or ../shared/realworld, else the cached upstream copy."""
    local = realworld_dir() / COLLECTION
    if local.is_file():
        return local
    if not CACHE.is_file():
        print(f"conformance: no {local}; downloading {UPSTREAM_URL}", flush=True)
        with urllib.request.urlopen(UPSTREAM_URL, timeout=60) as response:
            data = response.read()
        if hashlib.sha256(data).hexdigest() != UPSTREAM_SHA256:
            raise SystemExit(f"conformance: {UPSTREAM_URL} does not have the pinned SHA-256")
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_bytes(data)
    return CACHE


def seed(base: str, ca: Path) -> None:
    """An article by `johnjacob` tagged `dragons` (the author and tag the collection lists first),
    so that its list requests also take their non-empty branches, whose assertions check the
    articles' fields (an empty database only checks `articlesCount` there)."""
    with httpx.Client(base_url=base, verify=ssl.create_default_context(cafile=str(ca)), timeout=30) as client:
        user = {"username": "johnjacob", "email": "johnjacob@example.com", "password": secrets.token_urlsafe(12)}
        token = client.post("/api/users", json={"user": user}).raise_for_status().json()["user"]["token"]
        article = {"title": "How to train your dragon", "description": "Ever wonder how?",
                   "body": "You have to believe", "tagList": ["dragons", "training"]}
        client.post("/api/articles", json={"article": article},
                    headers={"Authorization": f"Token {token}"}).raise_for_status()


def run(newman: Path, collection: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="conduit-conformance-") as state:
        ports = mesh_ports()
        started = time.monotonic()
        with conduit_run(Path(state) / "state", ports) as mesh:
            print(f"conformance: mesh up at {mesh.https} in {time.monotonic() - started:.0f} s", flush=True)
            seed(mesh.https, mesh.ca)
            username = f"conformance{secrets.token_hex(4)}"
            report = Path(state) / "newman.json"
            command = [
                str(newman), "run", str(collection),
                "--global-var", f"APIURL={mesh.https}/api",
                "--global-var", f"USERNAME={username}",
                "--global-var", f"EMAIL={username}@example.com",
                "--global-var", f"PASSWORD={secrets.token_urlsafe(12)}",
                "--reporters", "cli,json", "--reporter-json-export", str(report),
            ]
            # The mesh's own CA, not --insecure: the run checks TLS as a browser would.
            environment = {**os.environ, "NODE_EXTRA_CA_CERTS": str(mesh.ca)}
            status = subprocess.run(command, env=environment, check=False).returncode
            stats = json.loads(report.read_text())["run"]["stats"]["assertions"] if report.is_file() else None
    if stats is None:
        print("conformance: newman wrote no report", flush=True)
        return status or 1
    print(f"conformance: {stats['total'] - stats['failed']}/{stats['total']} assertions passed", flush=True)
    return status if status else int(stats["failed"] > 0 or stats["total"] == 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--newman", type=Path, required=True)
    parser.add_argument("--collection", type=Path)
    arguments = parser.parse_args()
    return run(arguments.newman, arguments.collection or collection_path())


if __name__ == "__main__":
    sys.exit(main())
