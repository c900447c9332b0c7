"""HTTP caching at the edge: the policy of each RPC and the Lua filter that applies it.

The filter (`http_cache.lua`) gives every 200 answer to a REST GET a strong `ETag` (a hash of
the exact bytes), answers a matching `If-None-Match` with a bodiless 304, and sets
`Cache-Control` and `Vary` from the RPC's policy, carried in its route's metadata:

- `public`: an anonymous RPC, whose answer is the same for every anonymous caller (tags,
  articles, comments, profiles). Anonymous callers get `public, max-age=N`; a caller with a
  token may get a personalised answer (`following`, `favorited`): `private, no-cache`.
  Always `Vary: Authorization`.
- `private`: an RPC that needs a caller (the feed): `private, no-cache`, `Vary: Authorization`.
- `no-store`: an RPC whose answer carries a credential (`GET /api/user` returns the token):
  `no-store`. So is every non-GET answer, every error, every stream and every answer setting
  a cookie. Why a strong ETag computed in Lua: docs/decisions/0043-http-caching.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from google.protobuf import descriptor

from conduit_gateway.descriptors import Access, Contract, MethodInfo

Config = dict[str, Any]

HTTP_CACHE_FILTER = "conduit.http_cache"
# Fields whose value is a credential: an answer holding one is never stored.
CREDENTIAL_FIELDS = frozenset({"token", "access_token", "refresh_token", "client_secret", "id_token", "secret"})
_MAX_AGE_LINE = "local PUBLIC_MAX_AGE = 0\n"


@dataclass(frozen=True)
class HttpCachePolicy:
    """How long shared caches and browsers may keep public answers without asking again."""

    public_max_age_seconds: int = 30

    def __post_init__(self) -> None:
        if self.public_max_age_seconds < 0:
            raise ValueError("public_max_age_seconds must not be negative")


def carries_credential(message: descriptor.Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """Whether `message`, or a message inside it, has a credential field."""
    if message.full_name in seen:
        return False
    for field in message.fields:
        if field.name in CREDENTIAL_FIELDS:
            return True
        if field.message_type is not None and carries_credential(field.message_type, seen | {message.full_name}):
            return True
    return False


def route_policies(contract: Contract, methods: Iterable[MethodInfo]) -> dict[str, str]:
    """The caching policy of each RPC with a REST GET binding, by gRPC path."""
    rpcs = {rpc.full_path: rpc for rpc in contract.rpcs()}
    policies: dict[str, str] = {}
    for method in methods:
        if method.streaming or not any(b.method == "GET" for b in method.bindings):
            continue
        rpc = rpcs.get(method.grpc_path)
        if rpc is None or carries_credential(rpc.output_type):
            policies[method.grpc_path] = "no-store"
        elif method.access is Access.ANONYMOUS:
            policies[method.grpc_path] = "public"
        else:
            policies[method.grpc_path] = "private"
    return policies


def route_metadata(policies: Mapping[str, str], grpc_path: str) -> Config:
    """The `filter_metadata` entry of one RPC's route (empty when it has no policy)."""
    policy = policies.get(grpc_path)
    return {HTTP_CACHE_FILTER: {"policy": policy}} if policy is not None else {}


def lua_source(policy: HttpCachePolicy) -> str:
    source = resources.files("conduit_gateway").joinpath("http_cache.lua").read_text(encoding="utf-8")
    if _MAX_AGE_LINE not in source:
        raise ValueError("http_cache.lua lost its PUBLIC_MAX_AGE line")
    return source.replace(_MAX_AGE_LINE, f"local PUBLIC_MAX_AGE = {policy.public_max_age_seconds}\n")


def http_cache_filter(policy: HttpCachePolicy) -> Config:
    """The Lua filter; listed before the REST filter so that it sees final answers."""
    return {"name": HTTP_CACHE_FILTER, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "default_source_code": {"inline_string": lua_source(policy)},
    }}


__all__ = ["CREDENTIAL_FIELDS", "HTTP_CACHE_FILTER", "HttpCachePolicy", "carries_credential",
           "http_cache_filter", "lua_source", "route_metadata", "route_policies"]
