"""What a call made while serving another carries on: the context of the call being served.

`outgoing_metadata()` is added to every call on an internal channel (runtime/channels.py), so no
client can forget it: the request id. Trace context travels beside it, through the OpenTelemetry
client interceptor of the same channel (runtime/telemetry.py).
"""

from __future__ import annotations

from conduit_server.runtime.logs import request_id_var

REQUEST_ID_KEY = "x-request-id"


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata to send on with a call made from inside the call being served (empty outside one)."""
    metadata: list[tuple[str, str]] = []
    if request_id := request_id_var.get():
        metadata.append((REQUEST_ID_KEY, request_id))
    return tuple(metadata)
