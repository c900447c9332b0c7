"""A webhook receiver started by a test: a real HTTP server on loopback, one behaviour per path.

Every delivery is verified with the `standardwebhooks` package (the specification's reference
library, not ours) against the secrets the test gave the path; a delivery that does not verify
is answered 401 and recorded as such. Tests wait on `wait_for` (a condition variable), never on time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified_with: list[int]  # indexes of the path's secrets whose signature verified
    status: int

    @property
    def payload(self) -> dict[str, Any]:
        import json

        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@dataclass
class Behaviour:
    """How a path answers: `fail_first` 500s, then `status`; `hold` blocks until released; `redirect_to`."""

    secrets: list[str] = field(default_factory=list)
    fail_first: int = 0
    status: int = 204
    redirect_to: str = ""
    hold: threading.Event | None = None


class Receiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.deliveries: list[Delivery] = []
        self.arrived: list[str] = []  # paths, as requests come in (before any hold)
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("content-length", "0"))
        body = request.rfile.read(length)
        headers = {name.lower(): value for name, value in request.headers.items()}
        behaviour = self.behaviours.get(request.path, Behaviour())
        verified = []
        for index, secret in enumerate(behaviour.secrets):
            try:
                Webhook(secret).verify(body, headers)
                verified.append(index)
            except WebhookVerificationError:
                continue
        with self.changed:
            self.arrived.append(request.path)
            self.changed.notify_all()
        if behaviour.hold is not None:
            behaviour.hold.wait(30)
        earlier = sum(1 for d in self.deliveries if d.path == request.path)
        if not verified:
            status = 401
        elif behaviour.redirect_to:
            status = 307
        elif earlier < behaviour.fail_first:
            status = 500
        else:
            status = behaviour.status
        with self.changed:
            self.deliveries.append(Delivery(request.path, headers, body, verified, status))
            self.changed.notify_all()
        request.send_response(status)
        if behaviour.redirect_to:
            request.send_header("location", behaviour.redirect_to)
        request.send_header("content-length", "2")
        request.end_headers()
        request.wfile.write(b"ok")

    def at(self, path: str) -> list[Delivery]:
        with self.changed:
            return [delivery for delivery in self.deliveries if delivery.path == path]

    async def wait_for(self, condition: Callable[[], bool], seconds: float = 15.0) -> None:
        def wait() -> bool:
            with self.changed:
                return self.changed.wait_for(condition, seconds)

        assert await asyncio.to_thread(wait), "the receiver never saw what the test waited for"

    async def wait_count(self, path: str, count: int, seconds: float = 15.0) -> list[Delivery]:
        await self.wait_for(lambda: sum(1 for d in self.deliveries if d.path == path) >= count, seconds)
        return self.at(path)


@contextmanager
def running_receiver(host: str = "127.0.0.1", port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(host, port)
    receiver.thread.start()
    try:
        yield receiver
    finally:
        for behaviour in receiver.behaviours.values():
            if behaviour.hold is not None:
                behaviour.hold.set()
        receiver.server.shutdown()
        receiver.server.server_close()
