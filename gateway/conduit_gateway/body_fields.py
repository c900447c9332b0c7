"""What the edge's Lua filter knows of every REST binding: its methods and the JSON shape of its body.

Envoy 1.40's grpc_json_transcoder drops unknown fields of a JSON body silently (GATEWAY-FACTS.md),
and RealWorld clients send extra fields (the official collection posts `{"user": …}` to follow):
extra input is ignored and never bound. What the transcoder does *not* do well is explain a bad
body: its 400s carry parser output and protobuf type names. So the Lua filter, before jwt_authn
and the transcoder, matches the REST request (method and path) against the bindings below and
- answers `405` with `Allow` for a known path with an undeclared method;
- empties the body of an operation that has none (`body` unset, or `body: "*"` on a request whose
  every field is bound by the path: follow, favorite), so nothing in it can be bound;
- scans a JSON body once: not JSON → 400 `{"errors":{"body":["is not valid JSON"]}}`; a value of
  the wrong JSON type for a known field → 422 naming the field; unknown keys are skipped.

The shape of a message's JSON (proto3 JSON mapping, as the transcoder reads it) is a *tag* per
key, under the field's lowerCamelCase `json_name` and its proto name (both are accepted):
`string` (string, bytes), `number` (JSON number or numeric string), `bool`, `enum` (name or
number), `free` (maps, `google.*` types: anything), a message's full name (an object checked
below), and `*` + a tag for a repeated field (a list of those). JSON `null` is always accepted
(it means unset).

The tables reach Lua generated in place of the `BODY_` placeholder lines of
`rest_responses.lua`: route metadata cannot carry them, since routes match the gRPC path only
after transcoding, and the REST request is what Lua sees.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from google.protobuf import descriptor

from conduit_gateway.descriptors import Contract, HttpBinding, template_pattern

FREE = "free"
# The body kinds of a binding that are not a JSON object read into a message.
NO_BODY = ""  # the operation has no body: any body is dropped
RAW_BODY = "raw"  # google.api.HttpBody or a scalar: passed as is (the OAuth2 form)
_LUA_MAGIC = frozenset("^$()%.[]*+-?")
_MESSAGES_PLACEHOLDER = "local BODY_MESSAGES = {}\n"
_BINDINGS_PLACEHOLDER = "local BODY_BINDINGS = {}\n"
_NUMBERS = frozenset({
    descriptor.FieldDescriptor.TYPE_DOUBLE, descriptor.FieldDescriptor.TYPE_FLOAT,
    descriptor.FieldDescriptor.TYPE_INT64, descriptor.FieldDescriptor.TYPE_UINT64,
    descriptor.FieldDescriptor.TYPE_INT32, descriptor.FieldDescriptor.TYPE_FIXED64,
    descriptor.FieldDescriptor.TYPE_FIXED32, descriptor.FieldDescriptor.TYPE_UINT32,
    descriptor.FieldDescriptor.TYPE_SFIXED32, descriptor.FieldDescriptor.TYPE_SFIXED64,
    descriptor.FieldDescriptor.TYPE_SINT32, descriptor.FieldDescriptor.TYPE_SINT64,
})


@dataclass(frozen=True)
class RestBinding:
    """One REST binding: its method, path template and body (a message name, NO_BODY or RAW_BODY)."""

    method: str
    path_template: str
    body: str

    @property
    def specificity(self) -> tuple[int, ...]:
        return HttpBinding(self.method, self.path_template).specificity

    @property
    def lua_pattern(self) -> str:
        """An anchored Lua pattern matching the paths (query string removed) of this binding."""
        return lua_pattern(self.path_template)


@dataclass(frozen=True)
class RestBindings:
    """Every REST binding, most specific first, and the JSON shape of every message their bodies reach.

    `messages[name][key]` is the tag of `key` (see the module docstring).
    """

    bindings: tuple[RestBinding, ...]
    messages: Mapping[str, Mapping[str, str]]

    def binding(self, method: str, path_template: str) -> RestBinding:
        return next(b for b in self.bindings if (b.method, b.path_template) == (method, path_template))

    def methods(self, path_template: str) -> frozenset[str]:
        """The methods declared on a path template (what a 405's `Allow` lists)."""
        return frozenset(b.method for b in self.bindings if b.path_template == path_template)

    def shape(self, message: str, prefix: str = "") -> Mapping[str, str]:
        """The tags of the keys at `prefix` (dotted keys from `message`): `shape(m, "user")`."""
        for key in filter(None, prefix.split(".")):
            child = self.messages[message][key]
            if child not in self.messages:
                raise KeyError(f"{prefix}: {key} is {child}, not an object")
            message = child
        return self.messages[message]

    def lua(self) -> tuple[str, str]:
        """The Lua statements defining `BODY_MESSAGES` and `BODY_BINDINGS`."""
        messages = "".join(
            f"  [{_lua_string(name)}] = {{{', '.join(_lua_entry(k, v) for k, v in sorted(keys.items()))}}},\n"
            for name, keys in sorted(self.messages.items()))
        bindings = "".join(
            f"  {{method = {_lua_string(b.method)}, pattern = {_lua_string(b.lua_pattern)}, "
            f"body = {_lua_string(b.body)}}},\n" for b in self.bindings)
        return (f"local BODY_MESSAGES = {{\n{messages}}}\n", f"local BODY_BINDINGS = {{\n{bindings}}}\n")

    def render_into(self, lua_source: str) -> str:
        """`lua_source` with its two placeholder lines replaced by the generated tables."""
        messages, bindings = self.lua()
        for placeholder in (_MESSAGES_PLACEHOLDER, _BINDINGS_PLACEHOLDER):
            if lua_source.count(placeholder) != 1:
                raise ValueError(f"the Lua source needs exactly one {placeholder.strip()!r} line")
        return lua_source.replace(_MESSAGES_PLACEHOLDER, messages).replace(_BINDINGS_PLACEHOLDER, bindings)


def rest_bindings(contract: Contract, services: Collection[str] | None = None) -> RestBindings:
    """The REST bindings of `services` (default: all) and the shapes of their JSON bodies."""
    bindings: list[RestBinding] = []
    messages: dict[str, dict[str, str]] = {}
    for rpc in contract.rpcs(""):
        if services is not None and rpc.service not in services:
            continue
        for binding in rpc.bindings:
            body = _body_kind(rpc.input_type, binding)
            if body not in (NO_BODY, RAW_BODY):
                _collect(contract.message(body), messages)
            bindings.append(RestBinding(binding.method, binding.path_template, body))
    bindings.sort(key=lambda b: b.specificity)
    return RestBindings(tuple(bindings), messages)


def lua_pattern(template: str) -> str:
    """The anchored Lua pattern of a `google.api.http` path template; see `template_regex`."""
    return "^" + template_pattern(template, _lua_escape) + "$"


def _body_kind(request: descriptor.Descriptor, binding: HttpBinding) -> str:
    """The message a JSON body is read into, NO_BODY, or RAW_BODY."""
    if not binding.body:
        return NO_BODY
    if binding.body == "*":
        bound = {param.split(".")[0] for param in binding.path_params}
        return request.full_name if any(f.name not in bound for f in request.fields) else NO_BODY
    message: descriptor.Descriptor | None = request
    for name in binding.body.split("."):
        field = message.fields_by_name.get(name) if message is not None else None
        message = field.message_type if field is not None and not field.is_repeated else None
    if message is None or message.full_name.startswith("google."):
        return RAW_BODY  # a scalar, a list, google.api.HttpBody, a well-known type
    return message.full_name


def tag_of(field: descriptor.FieldDescriptor) -> str:
    """The JSON shape tag of a field (module docstring)."""
    child = field.message_type
    if child is not None and child.GetOptions().map_entry:
        return FREE
    if child is not None:
        element = FREE if child.full_name.startswith("google.") else child.full_name
    elif field.type in (descriptor.FieldDescriptor.TYPE_STRING, descriptor.FieldDescriptor.TYPE_BYTES):
        element = "string"
    elif field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        element = "bool"
    elif field.type == descriptor.FieldDescriptor.TYPE_ENUM:
        element = "enum"
    elif field.type in _NUMBERS:
        element = "number"
    else:
        element = FREE
    return "*" + element if field.is_repeated else element


def _collect(message: descriptor.Descriptor, messages: dict[str, dict[str, str]]) -> None:
    if message.full_name in messages:
        return
    keys: dict[str, str] = {}
    messages[message.full_name] = keys  # before the children: recursive types terminate
    for field in message.fields:
        keys[field.name] = keys[field.json_name] = tag_of(field)
        child = field.message_type
        if child is not None and not child.GetOptions().map_entry and not child.full_name.startswith("google."):
            _collect(child, messages)


def _lua_escape(literal: str) -> str:
    return "".join("%" + char if char in _LUA_MAGIC else char for char in literal)


def _lua_string(text: str) -> str:
    # The JSON string of printable ASCII is a valid Lua string literal (LuaJIT has no \u escapes).
    if not (text.isascii() and text.isprintable()):
        raise ValueError(f"not printable ASCII: {text!r}")
    return json.dumps(text)


def _lua_entry(key: str, tag: str) -> str:
    return f"[{_lua_string(key)}] = {_lua_string(tag)}"


__all__ = ["FREE", "NO_BODY", "RAW_BODY", "RestBinding", "RestBindings", "lua_pattern", "rest_bindings",
           "tag_of"]
