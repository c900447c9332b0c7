"""Helpers for the contract tests: locating the specs, matching RealWorld operations,
validating JSON against OpenAPI 3.1 schemas, and building sample messages and bodies."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = ROOT / "gateway" / "conduit.binpb"


def realworld_dir() -> Path:
    """Where the upstream RealWorld material is: `$REALWORLD_DIR`, else `../shared/realworld/`
    beside the clone (it may not exist: see `realworld_file`)."""
    return Path(os.environ.get("REALWORLD_DIR") or ROOT.parent / "shared" / "realworld")


def realworld_file(name: str) -> Path:
    """An upstream RealWorld file, or a skip with a one-line reason when it is not here (a fresh
    clone without the sibling folder): the project does not copy upstream material."""
    path = realworld_dir() / name
    if not path.is_file():
        pytest.skip(f"needs upstream RealWorld {name}: set REALWORLD_DIR or put it in {path.parent}",
                    allow_module_level=True)
    return path


GENERATED_SPEC = ROOT / "gateway" / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

# Realistic values for the properties RealWorld clients send, so that the generated
# document's validation rules (email format, password length) accept them.
SAMPLE_STRINGS = {
    "email": "jake@jake.jake",
    "password": "jakejake",
    "username": "jake",
    "bio": "I work at statefarm",
    "image": "https://i.stack.imgur.com/xHWG8.jpg",
    "title": "How to train your dragon",
    "description": "Ever wonder how?",
    "body": "You have to believe",
    "slug": "how-to-train-your-dragon",
    "tag": "dragons",
    "author": "jake",
    "favorited": "jake",
}

# RealWorld operationId -> RPC. The mapping test derives this table from methods and paths
# and compares; the other tests use it to pick messages and operations.
EXPECTED_RPCS = {
    "Login": "UsersService.Login",
    "CreateUser": "UsersService.CreateUser",
    "GetCurrentUser": "UsersService.GetCurrentUser",
    "UpdateCurrentUser": "UsersService.UpdateCurrentUser",
    "GetProfileByUsername": "ProfilesService.GetProfile",
    "FollowUserByUsername": "ProfilesService.FollowProfile",
    "UnfollowUserByUsername": "ProfilesService.UnfollowProfile",
    "GetArticlesFeed": "ArticlesService.ListFeedArticles",
    "GetArticles": "ArticlesService.ListArticles",
    "CreateArticle": "ArticlesService.CreateArticle",
    "GetArticle": "ArticlesService.GetArticle",
    "UpdateArticle": "ArticlesService.UpdateArticle",
    "DeleteArticle": "ArticlesService.DeleteArticle",
    "GetArticleComments": "CommentsService.ListComments",
    "CreateArticleComment": "CommentsService.CreateComment",
    "DeleteArticleComment": "CommentsService.DeleteComment",
    "CreateArticleFavorite": "ArticlesService.FavoriteArticle",
    "DeleteArticleFavorite": "ArticlesService.UnfavoriteArticle",
    "GetTags": "TagsService.ListTags",
}


@dataclass(frozen=True)
class RealWorldOperation:
    """One operation of the RealWorld spec, its path made absolute (`/api/...`)."""

    operation_id: str
    method: str
    path: str
    operation: Mapping[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        """Method and path with every `{param}` name erased, for matching."""
        return self.method, normalise_path(self.path)


def normalise_path(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def closed(schema: Any) -> Any:
    """A copy of a schema in which objects with `properties` allow no other property.

    RealWorld's schemas are open; validating against the closed copy proves the JSON has
    exactly the documented shape, not merely a superset of it.
    """
    if isinstance(schema, dict):
        out = {key: closed(value) for key, value in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    return schema


def validator_for(document: Mapping[str, Any], pointer: str, *, strict: bool = True) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for the schema at `pointer` inside an OpenAPI 3.1 document."""
    contents = closed(copy.deepcopy(dict(document))) if strict else dict(document)
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(contents, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"urn:openapi#{pointer}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def sample_message(cls: type[Message], *, zeros: bool) -> Message:
    """A message with every field populated: one element per repeated field and map, every
    message field set. With `zeros`, scalars keep their default values (false, 0, "")."""
    msg = cls()
    _fill(msg, zeros=zeros, depth=0)
    return msg


def _fill(msg: Message, *, zeros: bool, depth: int) -> None:
    name = msg.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        msg.FromJsonString("2026-11-25T12:34:56.789Z")  # type: ignore[attr-defined]
        return
    seen_oneofs: set[str] = set()
    for field in msg.DESCRIPTOR.fields:
        if field.containing_oneof is not None:
            if field.containing_oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(field.containing_oneof.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue  # no map field is part of the public REST surface yet
        if field.message_type is not None:
            if depth > 4:
                continue
            target = getattr(msg, field.name).add() if field.is_repeated else getattr(msg, field.name)
            target.SetInParent()
            _fill(target, zeros=zeros, depth=depth + 1)
        elif field.is_repeated:
            getattr(msg, field.name).append(_scalar(field))
        elif not zeros:
            setattr(msg, field.name, _scalar(field))


def _scalar(field: Any) -> Any:  # a FieldDescriptor (the stubs type upb descriptors apart)
    """A value other than the default for a scalar field."""
    if field.enum_type is not None:
        return field.enum_type.values[-1].number
    if field.type == field.TYPE_BOOL:
        return True
    if field.type == field.TYPE_STRING:
        return SAMPLE_STRINGS.get(field.name, f"sample-{field.name}")
    if field.type == field.TYPE_BYTES:
        return b"\x01\x02"
    if field.type in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        return 1.5
    return 7


def sample_json(schema: Any, document: Mapping[str, Any], name: str = "") -> Any:
    """A JSON value for a RealWorld schema with every property present (as real clients send)."""
    while "$ref" in schema:
        schema = resolve(document, schema["$ref"])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {key: sample_json(value, document, key) for key, value in schema.get("properties", {}).items()}
    if kind == "array":
        return [sample_json(schema["items"], document, name.rstrip("s"))]
    if kind == "integer":
        return 1
    if kind == "boolean":
        return True
    if schema.get("format") == "date-time":
        return "2026-11-25T12:34:56.789Z"
    return SAMPLE_STRINGS.get(name, f"sample-{name}")


def resolve(document: Mapping[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def iter_realworld_operations(spec: Mapping[str, Any]) -> Iterator[RealWorldOperation]:
    base = "/api"  # the spec's server URL ends in /api; its paths are relative to it
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                operation = item[method]
                yield RealWorldOperation(operation["operationId"], method.upper(), base + path, operation)
