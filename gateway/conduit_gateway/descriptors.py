"""What the gateway needs to know about the contract, read from the compiled descriptor set.

Every RPC carries `google.api.http` (its REST binding, if any), `conduit.options.v1.auth`
(who may call it) and `conduit.options.v1.http_success_status` (201/204 instead of 200).
The Envoy config generator reads `services_from_descriptors` (options only); the OpenAPI
converter and the contract tests read `Contract` (a descriptor pool, message types, comments
and validation rules too). Adding an RPC to the protos adds its route, JWT rule, success
status and documentation without touching the gateway.
"""

from __future__ import annotations

import enum
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from buf.validate import validate_pb2
from conduit.options.v1 import auth_pb2
from conduit.options.v1 import http_pb2 as conduit_http_pb2

# Paths inside SourceCodeInfo locations: field numbers of descriptor.proto.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE = _SERVICE_METHOD = 2
_TEMPLATE_VARIABLE = re.compile(r"\{([A-Za-z_][\w.]*)(?:=[^}]*)?\}")


class Access(enum.Enum):
    """The baseline requirement of an RPC (`conduit.options.v1.Access`)."""

    ANONYMOUS = auth_pb2.ACCESS_ANONYMOUS
    AUTHENTICATED = auth_pb2.ACCESS_AUTHENTICATED
    INTERNAL = auth_pb2.ACCESS_INTERNAL


@dataclass(frozen=True)
class HttpBinding:
    """One REST binding of an RPC: `GET /api/articles/{slug}`."""

    method: str
    path_template: str
    body: str = ""
    response_body: str = ""

    @property
    def path_regex(self) -> str:
        """An RE2 pattern matching the paths the transcoder maps to this binding.

        Literal segments, `{var}`, `{var=*}`, `*` and a trailing `{var=**}`/`**` are
        supported; a trailing `/` is accepted as the transcoder accepts it.
        """
        return template_regex(self.path_template)

    @property
    def specificity(self) -> tuple[int, ...]:
        """Sort key putting literal segments before variables, as the transcoder prefers them."""
        return tuple(_segment_rank(s) for s in _segments(self.path_template))

    @property
    def path_params(self) -> tuple[str, ...]:
        """The field paths the template binds, in order: `/a/{slug}/c/{id}` -> `("slug", "id")`."""
        return path_params(self.path_template)


@dataclass(frozen=True)
class MethodInfo:
    """One RPC with the options the gateway acts on."""

    service: str
    name: str
    access: Access
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    bindings: tuple[HttpBinding, ...]
    success_status: int
    client_streaming: bool
    server_streaming: bool

    @property
    def grpc_path(self) -> str:
        """The HTTP/2 path of the native gRPC call: `/conduit.articles.v1.ArticlesService/GetArticle`."""
        return f"/{self.service}/{self.name}"

    @property
    def idempotent(self) -> bool:
        """True when every REST binding is a GET: such calls may be retried safely."""
        return bool(self.bindings) and all(b.method == "GET" for b in self.bindings)

    @property
    def streaming(self) -> bool:
        return self.client_streaming or self.server_streaming


@dataclass(frozen=True)
class ServiceInfo:
    """One gRPC service and its RPCs, in declaration order."""

    name: str
    methods: tuple[MethodInfo, ...]

    @property
    def internal(self) -> bool:
        """True when only other services of the mesh may call it: never exposed by the gateway."""
        return all(m.access is Access.INTERNAL for m in self.methods)

    @property
    def public_methods(self) -> tuple[MethodInfo, ...]:
        return tuple(m for m in self.methods if m.access is not Access.INTERNAL)


@dataclass(frozen=True)
class RpcInfo:
    """An RPC with its message types and comment, for documentation and contract tests.

    `verb`/`path`/`body` are the primary binding (empty without `google.api.http`);
    `access` is the `Access` enum value name (`ACCESS_UNSPECIFIED` without a rule);
    `success_status` is 0 when `http_success_status` is not set.
    """

    service: str
    method: str
    full_path: str
    verb: str
    path: str
    body: str
    access: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    success_status: int
    client_streaming: bool
    server_streaming: bool
    input_type: descriptor.Descriptor
    output_type: descriptor.Descriptor
    comment: str
    response_body: str = ""
    additional_bindings: tuple[HttpBinding, ...] = ()

    @property
    def service_name(self) -> str:
        """The service's simple name: `UsersService`."""
        return self.service.rsplit(".", 1)[-1]

    @property
    def has_http(self) -> bool:
        return bool(self.verb)

    @property
    def http_status(self) -> int:
        """The status the gateway answers on success."""
        return self.success_status or 200

    @property
    def path_params(self) -> tuple[str, ...]:
        return path_params(self.path)

    @property
    def bindings(self) -> tuple[HttpBinding, ...]:
        """The primary binding, if any, then the additional ones."""
        primary = (HttpBinding(self.verb, self.path, self.body, self.response_body),) if self.verb else ()
        return (*primary, *self.additional_bindings)


@dataclass(frozen=True)
class ContractService:
    """A service of a `Contract` with its comment and RPCs in declaration order."""

    full_name: str
    package: str
    file: str
    comment: str
    rpcs: tuple[RpcInfo, ...]

    @property
    def name(self) -> str:
        return self.full_name.rsplit(".", 1)[-1]


def load_descriptor_set(descriptor_path: Path | str) -> descriptor_pb2.FileDescriptorSet:
    """Parse a `buf build`/`protoc --descriptor_set_out` file (custom options included)."""
    return descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_path).read_bytes())


def services_from_descriptors(descriptor_path: Path) -> list[ServiceInfo]:
    """Every service of the descriptor set with its RPCs' REST bindings and auth rules.

    Raises ValueError for an RPC without an auth rule: the gateway fails closed, as the
    services do.
    """
    return services_from_descriptor_set(load_descriptor_set(descriptor_path))


def services_from_descriptor_set(descriptor_set: descriptor_pb2.FileDescriptorSet) -> list[ServiceInfo]:
    """As `services_from_descriptors`, for an already parsed descriptor set."""
    services: list[ServiceInfo] = []
    for file in descriptor_set.file:
        for service in file.service:
            full_name = f"{file.package}.{service.name}" if file.package else service.name
            methods = tuple(_method_info(full_name, m) for m in service.method)
            services.append(ServiceInfo(name=full_name, methods=methods))
    return services


def method_options(method: descriptor_pb2.MethodDescriptorProto) -> descriptor_pb2.MethodOptions:
    """The method's options parsed again, so that extensions imported since are resolved."""
    return descriptor_pb2.MethodOptions.FromString(method.options.SerializeToString())


def http_rule(options: descriptor_pb2.MethodOptions) -> http_pb2.HttpRule | None:
    return options.Extensions[annotations_pb2.http] if options.HasExtension(annotations_pb2.http) else None


def auth_rule(options: descriptor_pb2.MethodOptions) -> auth_pb2.AuthRule | None:
    return options.Extensions[auth_pb2.auth] if options.HasExtension(auth_pb2.auth) else None


def success_status(options: descriptor_pb2.MethodOptions) -> int:
    """`conduit.options.v1.http_success_status`; 0 when absent."""
    return options.Extensions[conduit_http_pb2.http_success_status]


def field_rules(field: descriptor.FieldDescriptor) -> validate_pb2.FieldRules | None:
    """The field's `buf.validate.field` rules, if any."""
    options = descriptor_pb2.FieldOptions.FromString(field.GetOptions().SerializeToString())
    return options.Extensions[validate_pb2.field] if options.HasExtension(validate_pb2.field) else None


def path_params(template: str) -> tuple[str, ...]:
    """The field paths a path template binds: `/a/{slug}/c/{id}` -> `("slug", "id")`."""
    return tuple(match.group(1) for match in _TEMPLATE_VARIABLE.finditer(template))


def _method_info(service: str, method: descriptor_pb2.MethodDescriptorProto) -> MethodInfo:
    options = method_options(method)
    rule = auth_rule(options)
    if rule is None or rule.access == auth_pb2.ACCESS_UNSPECIFIED:
        raise ValueError(f"/{service}/{method.name} has no (conduit.options.v1.auth) access rule")
    http = http_rule(options)
    success = success_status(options) or 200
    if not 200 <= success <= 399:
        raise ValueError(f"/{service}/{method.name}: http_success_status {success} is not a 2xx or 3xx code")
    return MethodInfo(
        service=service,
        name=method.name,
        access=Access(rule.access),
        roles=tuple(rule.roles),
        scopes=tuple(rule.scopes),
        bindings=tuple(_bindings(http)) if http is not None else (),
        success_status=success,
        client_streaming=method.client_streaming,
        server_streaming=method.server_streaming,
    )


def _bindings(rule: http_pb2.HttpRule) -> Iterator[HttpBinding]:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        yield HttpBinding(rule.custom.kind.upper(), rule.custom.path, rule.body, rule.response_body)
    elif pattern is not None:
        yield HttpBinding(pattern.upper(), getattr(rule, pattern), rule.body, rule.response_body)
    for extra in rule.additional_bindings:
        yield from _bindings(extra)


_VARIABLE = re.compile(r"^\{([A-Za-z_][\w.]*)(?:=(.*))?\}$")


def _segments(template: str) -> list[str]:
    path = template.split(":", 1)[0] if ":" in template.rsplit("/", 1)[-1] else template
    return [s for s in path.split("/") if s]


def _segment_rank(segment: str) -> int:
    match = _VARIABLE.match(segment)
    pattern = (match.group(2) or "*") if match else segment
    return {"*": 1, "**": 2}.get(pattern, 0)


def template_pattern(template: str, escape: Callable[[str], str]) -> str:
    """A `google.api.http` path template as a pattern: `*` one segment, `**` the rest, literals
    through `escape` (RE2's or Lua's); unanchored, with an optional trailing slash."""
    verb = ""
    last = template.rsplit("/", 1)[-1]
    if ":" in last and not last.startswith("{"):
        verb = ":" + last.split(":", 1)[1]
    parts: list[str] = []
    for segment in _segments(template):
        match = _VARIABLE.match(segment)
        pattern = (match.group(2) or "*") if match else segment
        if pattern == "*":
            parts.append("[^/]+")
        elif pattern == "**":
            parts.append(".+")
        elif "*" in pattern or "{" in pattern:
            raise ValueError(f"unsupported path template segment {segment!r} in {template!r}")
        else:
            parts.append(escape(pattern))
    return "/" + "/".join(parts) + escape(verb) + "/?"


def template_regex(template: str) -> str:
    """The RE2 regex of a `google.api.http` path template (see `HttpBinding.path_regex`)."""
    return template_pattern(template, re.escape)


def _clean_comment(text: str) -> str:
    return textwrap.dedent("\n".join(line.rstrip() for line in text.split("\n"))).strip()


def leading_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """The comments of a file's declarations by full name (trailing ones when none leads).

    Keys: services, methods (`pkg.Svc.Method`), messages (nested too), fields and oneofs
    (`pkg.Msg.field`), enums and their values (`pkg.Enum.VALUE`: scoped by the enum, unlike
    protobuf's own names, so values of different enums never collide).
    """
    locations = file.source_code_info.location
    texts = ((tuple(loc.path), loc.leading_comments or loc.trailing_comments) for loc in locations)
    by_path = {path: _clean_comment(text) for path, text in texts if text.strip()}
    names: dict[str, str] = {}

    def add(path: tuple[int, ...], name: str) -> None:
        if path in by_path:
            names[name] = by_path[path]

    def add_enum(path: tuple[int, ...], enum_proto: descriptor_pb2.EnumDescriptorProto, name: str) -> None:
        add(path, name)
        for j, value in enumerate(enum_proto.value):
            add((*path, _ENUM_VALUE, j), f"{name}.{value.name}")

    def add_message(path: tuple[int, ...], msg: descriptor_pb2.DescriptorProto, name: str) -> None:
        add(path, name)
        for j, field in enumerate(msg.field):
            add((*path, _MESSAGE_FIELD, j), f"{name}.{field.name}")
        for j, oneof in enumerate(msg.oneof_decl):
            add((*path, _MESSAGE_ONEOF, j), f"{name}.{oneof.name}")
        for j, nested in enumerate(msg.nested_type):
            add_message((*path, _MESSAGE_NESTED, j), nested, f"{name}.{nested.name}")
        for j, nested_enum in enumerate(msg.enum_type):
            add_enum((*path, _MESSAGE_ENUM, j), nested_enum, f"{name}.{nested_enum.name}")

    prefix = f"{file.package}." if file.package else ""
    for i, msg in enumerate(file.message_type):
        add_message((_FILE_MESSAGE, i), msg, prefix + msg.name)
    for i, enum_proto in enumerate(file.enum_type):
        add_enum((_FILE_ENUM, i), enum_proto, prefix + enum_proto.name)
    for i, service in enumerate(file.service):
        add((_FILE_SERVICE, i), prefix + service.name)
        for j, method in enumerate(service.method):
            add((_FILE_SERVICE, i, _SERVICE_METHOD, j), f"{prefix}{service.name}.{method.name}")
    return names


class Contract:
    """A descriptor set loaded into a pool of its own, with comments and options decoded."""

    def __init__(self, descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
        self.files: tuple[descriptor_pb2.FileDescriptorProto, ...] = tuple(descriptor_set.file)
        self.pool = descriptor_pool.DescriptorPool()
        self._comments: dict[str, str] = {}
        for file in self.files:  # protoc writes every dependency before its dependents
            self.pool.Add(file)
            self._comments.update(leading_comments(file))

    @classmethod
    def load(cls, descriptor_path: Path | str) -> Contract:
        return cls(load_descriptor_set(descriptor_path))

    def comment(self, full_name: str) -> str:
        """The comment of a declaration (keys as in `leading_comments`), or `""`."""
        return self._comments.get(full_name, "")

    def message(self, full_name: str) -> descriptor.Descriptor:
        return self.pool.FindMessageTypeByName(full_name)

    def message_class(self, full_name: str) -> type[Message]:
        """A message class for a type of this descriptor set (for `json_format`, tests)."""
        return message_factory.GetMessageClass(self.message(full_name))

    def services(self, package_prefix: str = "conduit.") -> list[ContractService]:
        """The services of packages starting with `package_prefix`, in file order."""
        return [self._service(file, service) for file in self.files
                if f"{file.package}.".startswith(package_prefix) for service in file.service]

    def rpcs(self, package_prefix: str = "conduit.") -> list[RpcInfo]:
        return [rpc for service in self.services(package_prefix) for rpc in service.rpcs]

    def rpc(self, name: str) -> RpcInfo:
        """An RPC by `/pkg.Svc/Method`, `pkg.Svc.Method` or `Svc.Method`."""
        wanted = name.strip("/").replace("/", ".")
        for rpc in self.rpcs(""):
            if wanted in (f"{rpc.service}.{rpc.method}", f"{rpc.service_name}.{rpc.method}"):
                return rpc
        raise KeyError(name)

    def _service(
        self, file: descriptor_pb2.FileDescriptorProto, service: descriptor_pb2.ServiceDescriptorProto
    ) -> ContractService:
        full_name = f"{file.package}.{service.name}" if file.package else service.name
        rpcs = tuple(self._rpc(full_name, method) for method in service.method)
        return ContractService(full_name, file.package, file.name, self.comment(full_name), rpcs)

    def _rpc(self, service: str, method: descriptor_pb2.MethodDescriptorProto) -> RpcInfo:
        options = method_options(method)
        http, auth = http_rule(options), auth_rule(options)
        bindings = tuple(_bindings(http)) if http is not None else ()
        primary = bindings[0] if bindings else HttpBinding("", "")
        return RpcInfo(
            service=service,
            method=method.name,
            full_path=f"/{service}/{method.name}",
            verb=primary.method,
            path=primary.path_template,
            body=primary.body,
            access=auth_pb2.Access.Name(auth.access) if auth is not None else "ACCESS_UNSPECIFIED",
            roles=tuple(auth.roles) if auth is not None else (),
            scopes=tuple(auth.scopes) if auth is not None else (),
            success_status=success_status(options),
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
            input_type=self.message(method.input_type.lstrip(".")),
            output_type=self.message(method.output_type.lstrip(".")),
            comment=self.comment(f"{service}.{method.name}"),
            response_body=primary.response_body,
            additional_bindings=bindings[1:],
        )


__all__ = [
    "Access", "Contract", "ContractService", "HttpBinding", "MethodInfo", "RpcInfo", "ServiceInfo",
    "auth_rule", "field_rules", "http_rule", "leading_comments", "load_descriptor_set", "method_options",
    "path_params", "services_from_descriptor_set", "services_from_descriptors", "success_status",
    "template_regex",
]
