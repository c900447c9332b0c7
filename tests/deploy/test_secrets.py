"""No secret value in any committed file: private keys, cloud and registry tokens, and non-empty
values given to secret-named settings in configuration files (env, YAML, Compose, workflows).
Test credentials in test code are not secrets (they open nothing), so code files are scanned only
for key material and token formats."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Formats that are secrets wherever they appear.
TOKEN_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "URL with a password": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:(?!\$\(|\$\{|<|\{)[^\s@/'\"]{3,}@"),
}
CONFIG_SUFFIXES = {".env", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".json"}
# `NAME=value` / `name: value` where the name says secret and the value is a literal.
SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)^\s*-?\s*["']?([a-z0-9_.-]*(?:password|passwd|secret|token|api_?key|private_?key|encryption_key)
        [a-z0-9_.-]*)["']?\s*[:=]\s*["']?([^\s"'#]+)""")
# Values that name where a secret comes from rather than being one (or an npm version range: `"js-tokens":
# "^4.0.0"` in a package lock names a package, not a credential).
REFERENCE = re.compile(r"^(?:\$|\{|<|\[|\(|true$|false$|null$|none$|\*+$|-+$|\|$|>$|[~^]\d+\.)", re.IGNORECASE)
# Key names whose literal values are references or settings, not secrets.
NOT_A_VALUE = re.compile(r"(?i)(file|path|ref|name|key_id|ttl|seconds|length|_port|header|type|url)$")
# A single lowercase word is prose or a setting (`id-token: write`), not a credential.
PLAIN_WORD = re.compile(r"^[a-z]+$")


def findings(path: Path, text: str) -> list[str]:
    found = [f"{path}: {label}" for label, pattern in TOKEN_PATTERNS.items() if pattern.search(text)]
    if path.suffix in CONFIG_SUFFIXES or path.name.startswith(".env") or path.name.endswith(".env"):
        for number, line in enumerate(text.splitlines(), 1):
            match = SECRET_ASSIGNMENT.match(line)
            if match and not REFERENCE.match(value := match.group(2)) and not PLAIN_WORD.match(value) \
                    and not NOT_A_VALUE.search(match.group(1)):
                found.append(f"{path}:{number}: {match.group(1)} has a literal value")
    return found


def committed_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    return [ROOT / name for name in names if name and (ROOT / name).is_file()]


def test_no_committed_file_holds_a_secret() -> None:
    problems: list[str] = []
    scanned = 0
    for path in committed_files():
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (descriptor sets): generated, no secrets
        scanned += 1
        problems += findings(path.relative_to(ROOT), data.decode("utf-8", errors="replace"))
    assert scanned > 100
    assert problems == []


def test_the_scanner_finds_what_it_looks_for() -> None:
    """Built at run time, so this file itself holds none of them."""
    key = "-----BEGIN " + "EC PRIVATE KEY-----\nMHcCAQEE\n"
    assert findings(Path("a.pem"), key) == ["a.pem: private key"]
    assert findings(Path("x.py"), "token = '" + "ghp_" + "a1" * 20 + "'") == ["x.py: GitHub token"]
    assert findings(Path("x.py"), "AKIA" + "ABCDEFGHIJKLMNOP") == ["x.py: AWS access key"]
    url = "postgresql://conduit:" + "hunter2hunter2" + "@db:5432/conduit"
    assert findings(Path("compose.yaml"), f"url: {url}") == ["compose.yaml: URL with a password"]
    env = "CONDUIT_INTERNAL_TOKEN=" + "s3cr3t-value\nCONDUIT_LOG_LEVEL=INFO\n"
    assert findings(Path("deploy/x.env"), env) == ["deploy/x.env:1: CONDUIT_INTERNAL_TOKEN has a literal value"]
    yaml_text = "password: " + "correct-horse\n" + "passwordFile: /run/secrets/pw\n"
    assert findings(Path("c.yaml"), yaml_text) == ["c.yaml:1: password has a literal value"]
    references = ("password: ${POSTGRES_PASSWORD}\nCONDUIT_DATABASE_URL: postgresql://conduit:$(CONDUIT_DB_PASSWORD)@db/x\n"
                  "secretKeyRef: {name: conduit-db-app, key: password}\n")
    assert findings(Path("d.yaml"), references) == []
