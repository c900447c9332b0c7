"""Authorization rules from the contract, and the caller of the current call.

Rules are read once from the service descriptors (`conduit.options.v1.auth`).
A method without a rule makes the server refuse to start: fail closed.
"""

from __future__ import annotations

import contextvars
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor

from conduit.options.v1 import auth_pb2
from conduit_server.runtime.errors import PermissionDenied, Unauthenticated
from conduit_server.runtime.tokens import Principal

_principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


class MissingAuthRule(RuntimeError):
    """A method of a served service has no authorization rule."""


@dataclass(frozen=True)
class MethodRule:
    """The authorization rule of one method, resolved at start-up."""

    method: str
    access: int
    roles: frozenset[str]
    scopes: frozenset[str]
    client_streaming: bool
    server_streaming: bool

    @property
    def internal(self) -> bool:
        return self.access == auth_pb2.ACCESS_INTERNAL

    @property
    def anonymous(self) -> bool:
        return self.access == auth_pb2.ACCESS_ANONYMOUS

    def check(self, principal: Principal | None) -> None:
        """Raise unless `principal` may call the method (internal callers are checked elsewhere)."""
        if self.anonymous or self.internal:
            return
        if principal is None:
            raise Unauthenticated("authentication required", reason="TOKEN_MISSING")
        if principal.is_service:
            if self.roles and not self.scopes:
                raise PermissionDenied("service accounts may not call this method", reason="USER_ONLY")
            missing = self.scopes - principal.scopes
            if missing:
                raise PermissionDenied(f"missing scope: {' '.join(sorted(missing))}",
                                       reason="INSUFFICIENT_SCOPE")
        elif self.roles and not self.roles & principal.roles:
            raise PermissionDenied(f"requires role: {' or '.join(sorted(self.roles))}",
                                   reason="INSUFFICIENT_ROLE")


def rules_for(services: Iterable[descriptor.ServiceDescriptor]) -> dict[str, MethodRule]:
    """Every method's rule by its full path (`/pkg.Service/Method`); raises MissingAuthRule."""
    rules: dict[str, MethodRule] = {}
    missing: list[str] = []
    for service in services:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            options = method.GetOptions()
            rule = options.Extensions[auth_pb2.auth] if options.HasExtension(auth_pb2.auth) else None
            if rule is None or rule.access == auth_pb2.ACCESS_UNSPECIFIED:
                missing.append(path)
                continue
            rules[path] = MethodRule(path, rule.access, frozenset(rule.roles), frozenset(rule.scopes),
                                     method.client_streaming, method.server_streaming)
    if missing:
        raise MissingAuthRule("methods without an authorization rule (conduit.options.v1.auth): "
                              + ", ".join(missing))
    return rules


def current_principal() -> Principal | None:
    """The verified caller of the call being served, or None when anonymous."""
    return _principal_var.get()


def require_principal() -> Principal:
    """The verified caller; raises Unauthenticated when anonymous."""
    principal = _principal_var.get()
    if principal is None:
        raise Unauthenticated("authentication required", reason="TOKEN_MISSING")
    return principal


def client_ip(context: Any) -> str:
    """The caller's IP: the address Envoy appended to `x-forwarded-for`, else the TCP peer.

    Envoy (use_remote_address) appends the address it saw to whatever the client
    sent, so only the last entry is trustworthy; earlier entries are the client's word.
    """
    forwarded = next((value for key, value in context.invocation_metadata() or ()
                      if key == "x-forwarded-for" and isinstance(value, str)), "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    candidate = hops[-1] if hops else ""
    if not candidate:
        peer: str = context.peer() or ""
        kind, _, address = peer.partition(":")
        candidate = address.rsplit(":", 1)[0].strip("[]") if kind in ("ipv4", "ipv6") else peer
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return candidate[:64] or "unknown"


def client_key(context: Any) -> str:
    """Who a per-client limit counts: the signed-in user, the service account, else the client's IP."""
    principal = _principal_var.get()
    if principal is None:
        return f"ip:{client_ip(context)}"
    if principal.user_id is not None and not principal.is_service:
        return f"user:{principal.user_id}"
    return f"service:{principal.subject}"


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _principal_var.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    restore(_principal_var, token)


def restore(var: contextvars.ContextVar[Any], token: contextvars.Token[Any]) -> None:
    """Undo `var.set(...)`. A stream the client cancelled has its handler closed later by the event
    loop's async-generator finaliser, in a context of its own that is thrown away after: there is
    nothing to restore there, and `reset` would raise ValueError (logged as "Task exception was never
    retrieved" once per cancelled stream)."""
    try:
        var.reset(token)
    except ValueError:  # raised only for a token of another context (reuse is a RuntimeError)
        return
