"""Generate the OpenAPI 3.1 document of the REST surface from the descriptor set.

    python -m conduit_gateway.openapi --descriptor gateway/conduit.binpb --out gateway/openapi.yaml

Paths come from `google.api.http`, schemas from the proto3 JSON mapping, text from the proto
comments, security from the `conduit.options.v1.auth` rules. `--check` fails on drift.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor

from buf.validate import validate_pb2
from conduit_gateway.descriptors import Contract, HttpBinding, RpcInfo, field_rules

__all__ = ["DEFAULT_SERVER_URL", "DEFAULT_VERSION", "build_document", "component_schemas", "main", "to_yaml"]

Schema = dict[str, Any]

DEFAULT_VERSION = "1.0.0"
DEFAULT_SERVER_URL = "https://localhost:8443"
TOKEN_URL = "/api/oauth/token"  # noqa: S105 - a URL, not a secret
ERROR_SCHEMA = "GenericErrorModel"
HTTP_BODY = "google.api.HttpBody"
_GATEWAY_DIR = Path(__file__).resolve().parents[1]  # gateway/ of a checkout
_REF = "#/components/schemas/"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_VARIABLE_PATTERN = re.compile(r"\{([^}=]+)=[^}]*\}")
_FD = descriptor.FieldDescriptor
_SCALARS: dict[int, Schema] = {  # the proto3 JSON mapping: 64-bit integers are strings
    kind: schema for kinds, schema in (
        ((_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32), {"type": "integer", "format": "int32"}),
        ((_FD.TYPE_UINT32, _FD.TYPE_FIXED32), {"type": "integer", "format": "uint32", "minimum": 0}),
        ((_FD.TYPE_INT64, _FD.TYPE_SINT64, _FD.TYPE_SFIXED64), {"type": "string", "format": "int64"}),
        ((_FD.TYPE_UINT64, _FD.TYPE_FIXED64), {"type": "string", "format": "uint64"}),
        ((_FD.TYPE_DOUBLE,), {"type": "number", "format": "double"}),
        ((_FD.TYPE_FLOAT,), {"type": "number", "format": "float"}),
        ((_FD.TYPE_BOOL,), {"type": "boolean"}),
        ((_FD.TYPE_STRING,), {"type": "string"}),
        ((_FD.TYPE_BYTES,), {"type": "string", "contentEncoding": "base64"}),
    ) for kind in kinds
}
_WELL_KNOWN: dict[str, Schema] = {  # messages with a JSON form of their own
    **{f"google.protobuf.{name}": {"type": "string"} for name in ("FieldMask", "Duration")},
    **{f"google.protobuf.{name}": {"type": "object"} for name in ("Empty", "Struct", "Any")},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    HTTP_BODY: {"type": "string", "description": "The raw HTTP body."},
}
_WRAPPERS = {f"google.protobuf.{kind}Value" for kind in
             ("Bool", "String", "Bytes", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double")}
_QUERY_MESSAGES = _WRAPPERS | {f"google.protobuf.{name}" for name in ("Timestamp", "Duration", "FieldMask")}
_KEYWORDS = {  # buf.validate rule -> JSON Schema keyword
    "min_len": "minLength", "max_len": "maxLength", "pattern": "pattern", "min_items": "minItems",
    "max_items": "maxItems", "gt": "exclusiveMinimum", "gte": "minimum",
    "lt": "exclusiveMaximum", "lte": "maximum",
}
_ERRORS = {  # status -> (components.responses name, description)
    401: ("Unauthorized", "The access token is missing (where required), invalid or expired."),
    403: ("Forbidden", "The caller may not do this (role, scope or ownership)."),
    404: ("NotFound", "The resource, or the route, does not exist."),
    422: ("UnprocessableEntity", "The request is invalid; `errors` names each failing field."),
    429: ("TooManyRequests", "Rate limited; retry after `Retry-After` seconds."),
}


def _ref(name: str) -> Schema:
    return {"$ref": _REF + name}


def _describe(schema: Schema, text: str) -> Schema:
    if text:
        schema["description"] = text
    return schema


def _split_comment(comment: str) -> tuple[str, str]:
    """A method comment's first sentence (the summary) and the rest, paragraphs unwrapped."""
    paragraphs = [" ".join(p.split()) for p in comment.split("\n\n") if p.strip()] or [""]
    first, *rest = _SENTENCE_END.split(paragraphs[0], maxsplit=1)
    return first, "\n\n".join([*rest, *paragraphs[1:]])


def _reachable(roots: Iterable[descriptor.Descriptor]) -> set[str]:
    """Full names of some messages and of every message they contain, transitively."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        msg = stack.pop()
        if msg.full_name not in seen:
            seen.add(msg.full_name)
            stack.extend(field.message_type for field in msg.fields if field.message_type is not None)
    return seen


def _ignored(rules: validate_pb2.FieldRules | None) -> bool:
    return rules is None or rules.ignore in (validate_pb2.IGNORE_IF_ZERO_VALUE, validate_pb2.IGNORE_ALWAYS)


def _must_send(field: descriptor.FieldDescriptor) -> bool:
    """Whether validation rejects a request that leaves the field out."""
    rules = field_rules(field)
    if rules is None or _ignored(rules):
        return False
    kind = rules.WhichOneof("type")
    return (rules.required or (kind == "string" and rules.string.min_len > 0)
            or (kind == "repeated" and rules.repeated.min_items > 0))


def _constrain(schema: Schema, rules: validate_pb2.FieldRules) -> None:
    """Copy the `buf.validate` rules that JSON Schema can say onto a field's schema."""
    kind = rules.WhichOneof("type")
    if kind not in ("string", "int32", "uint32", "repeated"):
        return  # 64-bit integers are JSON strings: numeric bounds would not apply
    for field, value in getattr(rules, kind).ListFields():
        if field.name in _KEYWORDS:
            schema[_KEYWORDS[field.name]] = value
        elif field.name in ("email", "uri") and value:
            schema["format"] = field.name
        elif field.name == "in":
            schema["enum"] = list(value)
        elif field.name == "items" and "$ref" not in schema.get("items", {"$ref": ""}):
            _constrain(schema["items"], value)


class _Builder:
    """Builds one document; component schemas are registered as they are referenced."""

    def __init__(self, contract: Contract, responses: Iterable[descriptor.Descriptor]) -> None:
        self.contract = contract
        self.schemas: dict[str, Schema] = {}
        # Messages that appear in responses document what proto3 JSON always prints as
        # `required`; request-only messages document what validation insists on.
        self.responses = _reachable(responses)

    def ref(self, target: descriptor.Descriptor | descriptor.EnumDescriptor) -> Schema:
        if target.full_name not in self.schemas:
            self.schemas[target.full_name] = {}  # placeholder: breaks recursion
            if isinstance(target, descriptor.EnumDescriptor):
                self.schemas[target.full_name] = self._enum(target)
            else:
                self.schemas[target.full_name] = self.message(target)
        return _ref(target.full_name)

    def _enum(self, enum: descriptor.EnumDescriptor) -> Schema:
        lines = [self.contract.comment(enum.full_name), ""]
        for value in enum.values:
            text = self.contract.comment(f"{enum.full_name}.{value.name}")
            lines.append(f"- `{value.name}`: {text}" if text else f"- `{value.name}`")
        return {"type": "string", "description": "\n".join(lines).strip(),
                "enum": [value.name for value in enum.values]}

    def message(self, msg: descriptor.Descriptor, omit: Iterable[str] = ()) -> Schema:
        fields = [field for field in msg.fields if field.name not in set(omit)]
        if msg.full_name in self.responses:
            required = [f.json_name for f in fields if not f.has_presence]
        else:
            required = [f.json_name for f in fields if _must_send(f)]
        schema = _describe({"type": "object"}, self.contract.comment(msg.full_name))
        schema["properties"] = {field.json_name: self.field(field) for field in fields}
        if required:
            schema["required"] = required
        return schema

    def _single(self, field: descriptor.FieldDescriptor) -> Schema:
        if field.message_type is not None:
            name = field.message_type.full_name
            if name in _WRAPPERS:
                return dict(_SCALARS[field.message_type.fields_by_name["value"].type])
            if name in _WELL_KNOWN:
                return dict(_WELL_KNOWN[name])
            return self.ref(field.message_type)
        if field.enum_type is not None:
            if field.enum_type.full_name == "google.protobuf.NullValue":
                return {"type": "null"}
            return self.ref(field.enum_type)
        return dict(_SCALARS[field.type])

    def field(self, field: descriptor.FieldDescriptor) -> Schema:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value = entry.fields_by_name["value"]
            schema: Schema = {"type": "object", "additionalProperties": self._single(value)}
        elif field.is_repeated:
            schema = {"type": "array", "items": self._single(field)}
        else:
            schema = self._single(field)
        rules = field_rules(field)
        if rules is not None and not _ignored(rules):
            _constrain(schema, rules)
        return _describe(schema, self.contract.comment(field.full_name))

    # -- operations ------------------------------------------------------------------------

    def _parameter(self, field: descriptor.FieldDescriptor, name: str, where: str) -> Schema:
        schema = self.field(field)
        param: Schema = {"name": name, "in": where}
        if "description" in schema:
            param["description"] = schema.pop("description")
        param["required"] = where == "path" or _must_send(field)
        param["schema"] = schema
        return param

    def _field_at(self, msg: descriptor.Descriptor, path: str) -> descriptor.FieldDescriptor:
        *parents, last = path.split(".")
        for name in parents:
            msg = msg.fields_by_name[name].message_type  # type: ignore[assignment]  # a path of messages
        return msg.fields_by_name[last]

    def _parameters(self, rpc: RpcInfo, binding: HttpBinding) -> list[Schema]:
        params = [self._parameter(self._field_at(rpc.input_type, p), p, "path") for p in binding.path_params]
        if binding.body == "*" or self._is_http_body(rpc, binding.body):
            return params  # every other field travels in the body (for HttpBody: the form)
        bound = {p.split(".")[0] for p in binding.path_params} | {binding.body}
        for field in rpc.input_type.fields:
            queryable = field.message_type is None or field.message_type.full_name in _QUERY_MESSAGES
            if field.name not in bound and queryable:
                params.append(self._parameter(field, field.json_name, "query"))
        return params

    def _is_http_body(self, rpc: RpcInfo, body: str) -> bool:
        field = rpc.input_type.fields_by_name.get(body) if body and body != "*" else None
        message_type = field.message_type if field is not None else None
        return message_type is not None and message_type.full_name == HTTP_BODY

    def _request_body(self, rpc: RpcInfo, binding: HttpBinding) -> Schema | None:
        msg = rpc.input_type
        if not binding.body:
            return None
        if self._is_http_body(rpc, binding.body):  # the OAuth2 token endpoint: a form of the other fields
            fields = [f for f in msg.fields if f.name not in {binding.body, *binding.path_params}]
            form = _describe({"type": "object"}, self.contract.comment(msg.full_name))
            form["properties"] = {f.name: self.field(f) for f in fields}
            if required := [f.name for f in fields if _must_send(f)]:
                form["required"] = required
            return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": form}}}
        if binding.body == "*":
            omit = {p.split(".")[0] for p in binding.path_params}
            if not omit:
                schema = self.ref(msg)
            elif all(field.name in omit for field in msg.fields):
                return None  # nothing left to send; an empty body or `{}` is accepted
            else:
                schema = self.message(msg, omit=omit)
        else:
            schema = self.field(self._field_at(msg, binding.body))
        if rpc.client_streaming:
            schema = {"type": "array", "items": schema}
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    def _success(self, rpc: RpcInfo, binding: HttpBinding) -> Schema:
        status = rpc.http_status
        response: Schema = {"description": HTTPStatus(status).phrase}
        if status == HTTPStatus.NO_CONTENT:
            return response
        if binding.response_body:
            schema = self.field(self._field_at(rpc.output_type, binding.response_body))
        elif rpc.output_type.full_name == HTTP_BODY:
            return {**response, "content": {"*/*": {"schema": {}}}}
        else:
            schema = self.ref(rpc.output_type)
        if rpc.server_streaming:
            response["description"] = ("A stream of Server-Sent Events; the `data:` of each event is one "
                                       f"`{rpc.output_type.full_name}` as JSON.")
            return {**response, "content": {"text/event-stream": {"schema": schema}}}
        return {**response, "content": {"application/json": {"schema": schema}}}

    def operation(self, rpc: RpcInfo, binding: HttpBinding, index: int) -> Schema:
        authenticated = rpc.access == "ACCESS_AUTHENTICATED" or bool(rpc.roles)
        summary, rest = _split_comment(rpc.comment)
        notes = [rest]
        if rpc.roles:
            notes.append("Requires one of the roles: " + ", ".join(f"`{r}`" for r in rpc.roles) + ".")
        if rpc.scopes:
            notes.append("Service-account tokens need the scopes: " + ", ".join(f"`{s}`" for s in rpc.scopes))
        operation_id = f"{rpc.service_name}_{rpc.method}" + (f"_{index}" if index else "")
        op: Schema = {"tags": [rpc.service_name], "operationId": operation_id}
        op.update({"summary": summary} if summary else {})
        op.update({"description": "\n\n".join(n for n in notes if n)} if any(notes) else {})
        if params := self._parameters(rpc, binding):
            op["parameters"] = params
        if (body := self._request_body(rpc, binding)) is not None:
            op["requestBody"] = body
        op["responses"] = {str(rpc.http_status): self._success(rpc, binding)}
        for status, (name, _) in _ERRORS.items():
            if status != HTTPStatus.FORBIDDEN or authenticated:
                op["responses"][str(status)] = {"$ref": f"#/components/responses/{name}"}
        if authenticated:
            op["security"] = [{"Token": []}, {"Bearer": []}]
            if rpc.scopes:
                op["security"].append({"OAuth2": list(rpc.scopes)})
        else:
            op["security"] = [{}, {"Token": []}, {"Bearer": []}]  # a token is optional and personalises
        return op


def _security_schemes(rpcs: Iterable[RpcInfo]) -> Schema:
    scopes: dict[str, list[str]] = {}
    for rpc in rpcs:
        for scope in rpc.scopes:
            scopes.setdefault(scope, []).append(f"{rpc.service_name}.{rpc.method}")
    return {
        "Token": {"type": "apiKey", "in": "header", "name": "Authorization",
                  "description": "RealWorld style: `Authorization: Token <jwt>`, with the access token "
                                 "returned by registration, login or a session."},
        "Bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "`Authorization: Bearer <jwt>`: the same access tokens, OAuth2 style."},
        "OAuth2": {"type": "oauth2", "description": "Service accounts: the client-credentials grant.",
                   "flows": {"clientCredentials": {"tokenUrl": TOKEN_URL, "scopes": {
                       scope: "Needed by " + ", ".join(users) for scope, users in sorted(scopes.items())}}}},
    }


def _error_components() -> tuple[Schema, Schema]:
    model = {
        "type": "object", "required": ["errors"],
        "description": "Every error answered by the gateway: messages by field (`body` when none fits).",
        "properties": {"errors": {"type": "object",
                                  "additionalProperties": {"type": "array", "items": {"type": "string"}}}},
    }
    responses: Schema = {}
    for status, (name, text) in _ERRORS.items():
        responses[name] = {"description": text,
                           "content": {"application/json": {"schema": _ref(ERROR_SCHEMA)}}}
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            retry = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
            responses[name]["headers"] = {"Retry-After": retry}
    return model, responses


def build_document(contract: Contract, *, version: str = DEFAULT_VERSION,
                   server_url: str = DEFAULT_SERVER_URL) -> Schema:
    """The OpenAPI 3.1 document for every HTTP-mapped RPC of `conduit.*` not internal-only."""
    public = [rpc for rpc in contract.rpcs("conduit.") if rpc.access != "ACCESS_INTERNAL"]
    routed = [rpc for rpc in public if rpc.has_http]
    builder = _Builder(contract, (rpc.output_type for rpc in routed))
    paths: dict[str, Schema] = {}
    for rpc in routed:
        for index, binding in enumerate(rpc.bindings):
            # `{name=shelves/*}` -> `{name}`: OpenAPI cannot say what a variable may match
            item = paths.setdefault(_VARIABLE_PATTERN.sub(r"{\1}", binding.path_template), {})
            item[binding.method.lower()] = builder.operation(rpc, binding, index)
    used = {rpc.service for rpc in routed}
    tags = [_describe({"name": service.name}, service.comment)
            for service in contract.services("conduit.") if service.full_name in used]
    error_model, error_responses = _error_components()
    schemas = {ERROR_SCHEMA: error_model, **builder.schemas}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Conduit Mesh API", "version": version, "description": (
            "The REST/JSON surface of Conduit Mesh, served by Envoy's gRPC-JSON transcoder. A drop-in "
            "RealWorld (Conduit) API plus the mesh's extensions. Generated from the protobuf contract "
            "(`proto/`) by `conduit_gateway.openapi`; do not edit by hand.")},
        "servers": [{"url": server_url}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": error_responses,
            "securitySchemes": _security_schemes(public),
        },
    }


def component_schemas(contract: Contract, *full_names: str, responses: bool = True) -> dict[str, Schema]:
    """The component schemas of some messages and of everything they refer to, by full name.

    `responses` picks the `required` rule: what proto3 JSON always prints (True) or what
    validation insists on (False).
    """
    roots = [contract.message(name) for name in full_names]
    builder = _Builder(contract, roots if responses else ())
    for root in roots:
        builder.ref(root)
    return dict(sorted(builder.schemas.items()))


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line text as literal blocks and no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _represent_str)


def to_yaml(document: Schema) -> str:
    text: str = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the OpenAPI 3.1 document from the descriptor set.")
    parser.add_argument("--descriptor", type=Path, default=_GATEWAY_DIR / "conduit.binpb")
    parser.add_argument("--out", type=Path, default=_GATEWAY_DIR / "openapi.yaml")
    parser.add_argument("--version", default=DEFAULT_VERSION, help="info.version of the document")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--check", action="store_true", help="fail if --out is not what would be written")
    args = parser.parse_args(argv)
    contract = Contract.load(args.descriptor)
    text = to_yaml(build_document(contract, version=args.version, server_url=args.server_url))
    if args.check:
        if not args.out.is_file() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is stale: regenerate it with `make openapi`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
