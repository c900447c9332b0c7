"""The SDK's contract module, written from the descriptor set by `generate.py`.

`clients/python/src/conduit/client/_contract.py` holds, for every RPC, its
path, message types, kind, idempotency level (`idempotency_level`), whether
it carries an idempotency key, and its default deadline
(`conduit.options.v1.default_timeout_ms`); plus the idempotency-key header
(`conduit.options.v1.idempotency_key_header`) and one error class per
`ErrorInfo` reason of `conduit.options.v1.ErrorReason` (`do_not_retry` from
its value option). Nothing here is hand-maintained in the SDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

DEFAULT_TIMEOUT_MS_FIELD = 51002
IDEMPOTENCY_KEY_HEADER_FIELD = 51003
DO_NOT_RETRY_FIELD = 51004
REASON_ENUM = "ErrorReason"
REASON_PREFIX = "ERROR_REASON_"
LEVELS = {0: "IDEMPOTENCY_UNKNOWN", 1: "NO_SIDE_EFFECTS", 2: "IDEMPOTENT"}
KINDS = {(False, False): "unary", (False, True): "server_stream", (True, False): "client_stream",
         (True, True): "bidi_stream"}
# The retry rules, from the idempotency level and the kind of each RPC (docs/decisions/0034):
# reads retry on every transient code, their own per-attempt timeout included; IDEMPOTENT writes on
# the codes that say the server did not finish; keyed writes (unary, level unknown) on those and on
# a timed-out attempt, since the key makes the repeat safe; server streams are resumed by watches on
# UNAVAILABLE / RESOURCE_EXHAUSTED; client streams never retry (their requests may be spent).
RETRY_CODES = {
    ("unary", "NO_SIDE_EFFECTS"): ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"),
    ("unary", "IDEMPOTENT"): ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED"),
    ("unary", "IDEMPOTENCY_UNKNOWN"): ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "DEADLINE_EXCEEDED"),
    ("server_stream", "NO_SIDE_EFFECTS"): ("UNAVAILABLE", "RESOURCE_EXHAUSTED"),
}
# (initial seconds, maximum seconds, multiplier, attempts): unary calls ride out a restart of a few
# seconds; stream reconnects back off longer (a watch lives for hours).
BACKOFF = {"unary": (0.1, 2.0, 2.0, 10), "server_stream": (0.25, 10.0, 2.0, 20)}
# Reasons that only repeat a status code (the server's default reason) or that the SDK models as a
# class of its own (RateLimited): no class of their own, the code's class stands for them.
GENERIC_REASONS = frozenset({
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED", "RATE_LIMITED"})
SDK_SERVICES = ("conduit.users.v1", "conduit.articles.v1", "conduit.search.v1", "conduit.realtime.v1")


def _unknown(options: descriptor_pb2.MethodOptions | descriptor_pb2.FileOptions |
             descriptor_pb2.EnumValueOptions, number: int) -> object | None:
    for field in UnknownFieldSet(options):
        if field.field_number == number:
            return field.data
    return None


@dataclass(frozen=True)
class Rpc:
    constant: str
    path: str
    module: str
    request: str
    response: str
    kind: str
    level: str
    timeout_ms: int


def _module_alias(proto_file: str) -> str:
    # conduit/articles/v1/articles.proto -> articles_v1_articles_pb2
    parts = proto_file.removesuffix(".proto").split("/")[1:]
    return "_".join(parts) + "_pb2"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _snake(name: str) -> str:
    name = name.replace("OAuth", "Oauth")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _class_name(reason: str) -> str:
    return "".join(part.capitalize() for part in reason.split("_")) + "Error"


def _comment(file: descriptor_pb2.FileDescriptorProto, path: tuple[int, ...]) -> str:
    for location in file.source_code_info.location:
        if tuple(location.path) == path:
            return " ".join(location.leading_comments.split())
    return ""


def _collect(fds: descriptor_pb2.FileDescriptorSet) -> tuple[list[Rpc], str, list[tuple[str, str, bool]]]:
    """The RPCs of the SDK's services, the idempotency-key header, and the error reasons."""
    by_type: dict[str, tuple[str, str]] = {}
    for f in fds.file:
        for message in f.message_type:
            by_type[f".{f.package}.{message.name}"] = (f.name, message.name)
    rpcs: list[Rpc] = []
    header = ""
    reasons: list[tuple[str, str, bool]] = []
    for f in fds.file:
        found = _unknown(f.options, IDEMPOTENCY_KEY_HEADER_FIELD)
        if isinstance(found, bytes):
            header = found.decode()
        for e_index, enum in enumerate(f.enum_type):
            if f.package == "conduit.options.v1" and enum.name == REASON_ENUM:
                for v_index, value in enumerate(enum.value):
                    if value.number == 0 or value.name.removeprefix(REASON_PREFIX) in GENERIC_REASONS:
                        continue
                    reason = value.name.removeprefix(REASON_PREFIX)
                    doc = _comment(f, (5, e_index, 2, v_index))
                    reasons.append((reason, doc, bool(_unknown(value.options, DO_NOT_RETRY_FIELD))))
        if f.package not in SDK_SERVICES:
            continue
        for service in f.service:
            for method in service.method:
                request_file, request = by_type[method.input_type]
                response_file, response = by_type[method.output_type]
                if request_file != f.name or response_file != f.name:
                    raise SystemExit(f"{method.name}: messages from another file are not supported")
                timeout = _unknown(method.options, DEFAULT_TIMEOUT_MS_FIELD)
                rpcs.append(Rpc(
                    constant=_snake(method.name), path=f"/{f.package}.{service.name}/{method.name}",
                    module=_module_alias(f.name), request=request, response=response,
                    kind=KINDS[(method.client_streaming, method.server_streaming)],
                    level=LEVELS[method.options.idempotency_level],
                    timeout_ms=int(timeout) if isinstance(timeout, int) else 0))
    return rpcs, header, reasons


def render(image: bytes) -> str:
    """The text of `_contract.py` for a descriptor set (with source info)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(image)
    files = {f.name: f for f in fds.file}
    rpcs, header, reasons = _collect(fds)
    constants = [r.constant for r in rpcs]
    duplicates = {c for c in constants if constants.count(c) > 1}
    if duplicates:
        raise SystemExit(f"RPC names used by two services: {sorted(duplicates)}")
    if not header:
        raise SystemExit("conduit.options.v1.idempotency_key_header is not set")
    modules = sorted({(r.module, next(name for name in files if _module_alias(name) == r.module)) for r in rpcs})
    out = [
        '"""The contract as the SDK needs it: every RPC and every error reason. Generated by',
        "`make generate` (proto/generate_sdk.py) from proto/; do not edit: CI fails on drift.",
        '"""',
        "",
        "# ruff: noqa: E501",
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any",
        "",
    ]
    imports = ["from conduit.client._errors import ConduitError", "from conduit.client._methods import Method"]
    for alias, name in modules:
        module = name.removesuffix(".proto").replace("/", ".") + "_pb2"
        imports.append(f"from {module.rsplit('.', 1)[0]} import {module.rsplit('.', 1)[1]} as {alias}")
    out += sorted(imports)
    out += [
        "",
        "#: The request metadata key of the idempotency key of non-idempotent unary calls.",
        f"IDEMPOTENCY_KEY_HEADER = {_q(header)}",
        "",
    ]
    for r in rpcs:
        out.append(f"{r.constant}: Method[{r.module}.{r.request}, {r.module}.{r.response}] = Method(")
        out.append(f"    {_q(r.path)}, {r.module}.{r.request}, {r.module}.{r.response},")
        codes = RETRY_CODES.get((r.kind, r.level), ())
        backoff = BACKOFF.get(r.kind, (0.1, 2.0, 2.0, 1))
        out.append(f"    kind={_q(r.kind)}, idempotency={_q(r.level)}, default_timeout_ms={r.timeout_ms},")
        out.append(f"    retry_codes=({''.join(_q(c) + ', ' for c in codes).rstrip(' ')}), backoff={backoff!r})")
    out += ["", "#: Every RPC of the contract by path, in contract order.",
            "METHODS: dict[str, Method[Any, Any]] = {m.path: m for m in ("]
    out += [f"    {r.constant}," for r in rpcs]
    out += [")}", ""]
    for reason, doc, do_not_retry in reasons:
        out += ["", f"class {_class_name(reason)}(ConduitError):",
                f'    """{doc} (ErrorInfo reason `{reason}`.)"""', "",
                f"    reason_name = {_q(reason)}", f"    do_not_retry = {do_not_retry}", ""]
    out += ["", "#: The error class of each ErrorInfo reason of the `conduit.dev` domain.",
            "REASON_CLASSES: dict[str, type[ConduitError]] = {"]
    out += [f"    {_q(reason)}: {_class_name(reason)}," for reason, _, _ in reasons]
    out += ["}", ""]
    return "\n".join(out)


def write(image: Path, target: Path) -> None:
    target.write_text(render(image.read_bytes()))
