"""The HTTP side of deliveries (httpx): POST to the address the target policy accepted, nothing else.

The request goes to the checked IP address with the original host in `Host` and, for https, as the
TLS server name (SNI and certificate check): no second DNS look-up can send it elsewhere. Redirects
are never followed (a 3xx is a failed attempt), proxies from the environment are ignored, at most
`max_response_bytes` of the answer are read (undecoded: no decompression bomb), and connections are
not kept, so one host's connection is never reused for another name on the same address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Sequence

import httpx

from conduit_server.webhooks.domain.ports import Outcome
from conduit_server.webhooks.domain.targets import Target


async def resolve(host: str, port: int) -> Sequence[str]:
    """Every address of `host` (the system resolver, off the event loop)."""
    answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(answer[4][0]) for answer in answers]


def _address_url(target: Target) -> httpx.URL:
    url = httpx.URL(target.url)
    ip = ipaddress.ip_address(target.address)
    return url.copy_with(host=str(ip), port=target.port)


def _host_header(target: Target) -> str:
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == default else f"{host}:{target.port}"


class HttpSender:
    """Sends deliveries; `close()` with the app."""

    def __init__(self, *, max_response_bytes: int, timeout_seconds: float, verify: bool | str = True) -> None:
        self._max_bytes = max_response_bytes
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, verify=verify,
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_keepalive_connections=0, max_connections=None))

    async def post(self, target: Target, headers: dict[str, str], body: bytes) -> Outcome:
        started = time.perf_counter()
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            request = self._client.build_request("POST", _address_url(target), content=body,
                                                 headers={**headers, "host": _host_header(target),
                                                          "user-agent": "conduit-webhooks/1"},
                                                 extensions=extensions)
            response = await self._client.send(request, stream=True)
            try:
                received = bytearray()
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) >= self._max_bytes:
                        break
            finally:
                await response.aclose()
        except httpx.HTTPError as failure:
            return Outcome(0, f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__,
                           elapsed())
        status = response.status_code
        problem = ""
        if 300 <= status < 400:
            problem = f"redirect to {response.headers.get('location', '?')} not followed"
        elif not 200 <= status < 300:
            problem = f"HTTP {status}"
        return Outcome(status, problem, elapsed(), bytes(received[: self._max_bytes]))

    async def close(self) -> None:
        await self._client.aclose()
