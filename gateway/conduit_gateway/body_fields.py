"""The JSON field names each REST binding accepts in its body, for the edge to refuse the rest.

Envoy 1.40's grpc_json_transcoder drops unknown fields of a JSON body silently and has no
option to refuse them (GATEWAY-FACTS.md). The Lua filter does it instead, before jwt_authn and
the transcoder: it matches the REST request (method and path, before transcoding) against the
bindings below, scans the JSON keys of the body at every depth and answers 400
`{"errors":{"user.admin":["is not a known field"]}}` for the first key that the message at
that position does not have.

What is allowed, per message of the body's tree (proto3 JSON mapping, as the transcoder reads it):
- every field under its lowerCamelCase `json_name` and under its proto name (both are accepted);
- a message field: its own fields, recursively; a repeated message field: the fields of its
  elements;
- map fields (keys are data), `google.*` types (Timestamp, wrappers, Struct, Any: scalars or
  free-form in JSON) and scalars: anything below them is left to the transcoder.
Bindings whose body is a `google.api.HttpBody` (the OAuth2 form endpoint) or a scalar field are
not JSON objects and are not listed. A field bound by the path may be repeated in a `body: "*"`
body, as the transcoder allows.

The allowlists reach Lua as a generated table that replaces the `BODY_` placeholder lines of
`rest_responses.lua`: route metadata cannot carry them, since routes match the gRPC path only
after transcoding, and the REST request is what Lua sees.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from google.protobuf import descriptor

from conduit_gateway.descriptors import Contract, HttpBinding, template_pattern

# A child that is not checked further (scalar, map, google.* type).
FREE = None
_LUA_MAGIC = frozenset("^$()%.[]*+-?")
_MESSAGES_PLACEHOLDER = "local BODY_MESSAGES = {}\n"
_BINDINGS_PLACEHOLDER = "local BODY_BINDINGS = {}\n"


@dataclass(frozen=True)
class BodyBinding:
    """One REST binding with a JSON object body: its method, path template and body message."""

    method: str
    path_template: str
    message: str

    @property
    def specificity(self) -> tuple[int, ...]:
        return HttpBinding(self.method, self.path_template).specificity

    @property
    def lua_pattern(self) -> str:
        """An anchored Lua pattern matching the paths (query string removed) of this binding."""
        return lua_pattern(self.path_template)


@dataclass(frozen=True)
class BodyAllowlist:
    """The body bindings, most specific first, and the allowed keys of every message they reach.

    `messages[name][key]` is the message name checked below `key`, or `FREE` (None).
    """

    bindings: tuple[BodyBinding, ...]
    messages: Mapping[str, Mapping[str, str | None]]

    def binding(self, method: str, path_template: str) -> BodyBinding:
        return next(b for b in self.bindings if (b.method, b.path_template) == (method, path_template))

    def allowed(self, message: str, prefix: str = "") -> frozenset[str]:
        """The keys allowed at `prefix` (dotted keys from `message`): `allowed(m, "user")`."""
        for key in filter(None, prefix.split(".")):
            child = self.messages[message][key]
            if child is None:
                raise KeyError(f"{prefix}: not checked below {key}")
            message = child
        return frozenset(self.messages[message])

    def lua(self) -> tuple[str, str]:
        """The Lua statements defining `BODY_MESSAGES` and `BODY_BINDINGS`."""
        messages = "".join(
            f"  [{_lua_string(name)}] = {{{', '.join(_lua_entry(k, v) for k, v in sorted(keys.items()))}}},\n"
            for name, keys in sorted(self.messages.items()))
        bindings = "".join(
            f"  {{method = {_lua_string(b.method)}, pattern = {_lua_string(b.lua_pattern)}, "
            f"message = {_lua_string(b.message)}}},\n" for b in self.bindings)
        return (f"local BODY_MESSAGES = {{\n{messages}}}\n", f"local BODY_BINDINGS = {{\n{bindings}}}\n")

    def render_into(self, lua_source: str) -> str:
        """`lua_source` with its two placeholder lines replaced by the generated tables."""
        messages, bindings = self.lua()
        for placeholder in (_MESSAGES_PLACEHOLDER, _BINDINGS_PLACEHOLDER):
            if lua_source.count(placeholder) != 1:
                raise ValueError(f"the Lua source needs exactly one {placeholder.strip()!r} line")
        return lua_source.replace(_MESSAGES_PLACEHOLDER, messages).replace(_BINDINGS_PLACEHOLDER, bindings)


def body_allowlist(contract: Contract, services: Collection[str] | None = None) -> BodyAllowlist:
    """The allowlist of every REST binding with a JSON body, of `services` (default: all)."""
    bindings: list[BodyBinding] = []
    messages: dict[str, dict[str, str | None]] = {}
    for rpc in contract.rpcs(""):
        if services is not None and rpc.service not in services:
            continue
        for binding in rpc.bindings:
            body = _body_message(rpc.input_type, binding.body)
            if body is None:
                continue
            _collect(body, messages)
            bindings.append(BodyBinding(binding.method, binding.path_template, body.full_name))
    bindings.sort(key=lambda b: b.specificity)
    return BodyAllowlist(tuple(bindings), messages)


def lua_pattern(template: str) -> str:
    """The anchored Lua pattern of a `google.api.http` path template; see `template_regex`."""
    return "^" + template_pattern(template, _lua_escape) + "$"


def _body_message(request: descriptor.Descriptor, body: str) -> descriptor.Descriptor | None:
    """The message a JSON body is read into, or None when the body is not a JSON object."""
    if not body:
        return None
    if body == "*":
        return request
    message: descriptor.Descriptor | None = request
    for name in body.split("."):
        field = message.fields_by_name.get(name) if message is not None else None
        message = field.message_type if field is not None and not field.is_repeated else None
    if message is None or message.full_name.startswith("google."):
        return None  # a scalar, a list, google.api.HttpBody, a well-known type
    return message


def _collect(message: descriptor.Descriptor, messages: dict[str, dict[str, str | None]]) -> None:
    if message.full_name in messages:
        return
    keys: dict[str, str | None] = {}
    messages[message.full_name] = keys  # before the children: recursive types terminate
    for field, child in _fields(message):
        keys[field.name] = keys[field.json_name] = child.full_name if child is not None else FREE
        if child is not None:
            _collect(child, messages)


def _fields(message: descriptor.Descriptor) -> Iterator[tuple[descriptor.FieldDescriptor,
                                                             descriptor.Descriptor | None]]:
    for field in message.fields:
        child = field.message_type
        if child is not None and (child.GetOptions().map_entry or child.full_name.startswith("google.")):
            child = None
        yield field, child


def _lua_escape(literal: str) -> str:
    return "".join("%" + char if char in _LUA_MAGIC else char for char in literal)


def _lua_string(text: str) -> str:
    # The JSON string of printable ASCII is a valid Lua string literal (LuaJIT has no \u escapes).
    if not (text.isascii() and text.isprintable()):
        raise ValueError(f"not printable ASCII: {text!r}")
    return json.dumps(text)


def _lua_entry(key: str, child: str | None) -> str:
    return f"[{_lua_string(key)}] = {'true' if child is None else _lua_string(child)}"


__all__ = ["FREE", "BodyAllowlist", "BodyBinding", "body_allowlist", "lua_pattern"]
