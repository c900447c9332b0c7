"""Where deliveries may go (SSRF protection, docs/decisions/0041-webhook-targets.md).

A URL is checked when it is registered and again before every delivery: its scheme
(`https` unless http is allowed), then every address its host resolves to. Loopback,
private, link-local, multicast, unspecified, reserved and other non-public addresses are
refused unless an allowed network holds them; IPv6 forms that embed an IPv4 address
(IPv4-mapped, 6to4, NAT64) are judged by the IPv4 address inside. The sender connects to
an address this module accepted, so a DNS answer that changes in between cannot redirect it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to (raises OSError when it does not).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CATEGORIES: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("private", lambda ip: ip.is_private),
    ("reserved", lambda ip: ip.is_reserved),
    ("non-public", lambda ip: not ip.is_global),
)


class TargetRefused(ValueError):
    """A URL deliveries may not go to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL: what to connect to (`address`) and what to ask for (`url`, `host` for Host/SNI)."""

    url: str
    scheme: str
    host: str
    port: int
    address: str


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


async def _addresses(host: str, port: int, resolve: Resolver) -> list[str]:
    """The host itself when it is an IP address, else every address it resolves to."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        addresses = list(dict.fromkeys(await resolve(host, port)))
    except OSError as error:
        raise TargetRefused(f"host {host} does not resolve: {error}") from None
    if not addresses:
        raise TargetRefused(f"host {host} does not resolve")
    return addresses


@dataclass(frozen=True)
class TargetPolicy:
    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow_http: bool, allowed_networks: Sequence[str]) -> TargetPolicy:
        return cls(allow_http, tuple(ipaddress.ip_network(net, strict=False) for net in allowed_networks))

    def refusal(self, address: str) -> str | None:
        """Why deliveries may not go to `address` ("loopback address 127.0.0.1"), or None when they may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip in network for network in self.allowed_networks):
            return None
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = self.refusal(str(inner))
            return None if why is None else f"{why} (embedded in IPv6 address {ip})"
        for name, test in _CATEGORIES:
            if test(ip):
                return f"{name} address {ip}"
        return None

    def parse(self, url: str) -> SplitResult:
        """The URL's parts, or TargetRefused naming what is wrong with its form."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as error:
            raise TargetRefused(f"not a valid URL: {error}") from error
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in allowed:
            raise TargetRefused("only https URLs are allowed" if not self.allow_http
                                else "only http and https URLs are allowed")
        if not parts.hostname:
            raise TargetRefused("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise TargetRefused("credentials in the URL are not allowed")
        if port == 0:
            raise TargetRefused("port 0 is not allowed")
        return parts

    async def check(self, url: str, resolve: Resolver) -> Target:
        """The address to deliver `url` to, or TargetRefused. Every address the host resolves to must
        be allowed: a host that also resolves to a refused one is refused (it is not to be trusted)."""
        parts = self.parse(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await _addresses(host, port, resolve)
        for address in addresses:
            why = self.refusal(address)
            if why is not None:
                subject = f"host {host} resolves to" if address != host else "the host is a"
                raise TargetRefused(f"{subject} {why}, which is not allowed")
        return Target(url.strip(), parts.scheme, host, port, addresses[0])
