"""gRPC servicer of conduit.webhooks.v1: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2

from conduit.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from conduit_server.runtime import auth
from conduit_server.webhooks.domain.endpoints import Endpoints, owner_of
from conduit_server.webhooks.domain.ports import AttemptRecord, EndpointRecord, MessageRecord, State

_STATES: dict[str, int] = {"pending": webhooks_pb2.MESSAGE_STATE_PENDING,
                           "delivered": webhooks_pb2.MESSAGE_STATE_DELIVERED, "dead": webhooks_pb2.MESSAGE_STATE_DEAD}
_STATE_NAMES: dict[int, State] = {webhooks_pb2.MESSAGE_STATE_PENDING: "pending",
                                  webhooks_pb2.MESSAGE_STATE_DELIVERED: "delivered",
                                  webhooks_pb2.MESSAGE_STATE_DEAD: "dead"}


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _endpoint(endpoint: EndpointRecord) -> webhooks_pb2.Endpoint:
    message = webhooks_pb2.Endpoint(id=endpoint.id, url=endpoint.url, event_types=endpoint.event_types,
                                    description=endpoint.description, created_at=_timestamp(endpoint.created_at))
    if endpoint.previous_secret_expires_at is not None:
        message.previous_secret_expires_at.CopyFrom(_timestamp(endpoint.previous_secret_expires_at))
    return message


def _message(record: MessageRecord) -> webhooks_pb2.Message:
    message = webhooks_pb2.Message(id=record.id, event_type=record.event_type,
                                   state=_STATES[record.state],  # type: ignore[arg-type]
                                   attempts_count=record.attempts, created_at=_timestamp(record.created_at))
    if record.state == "pending" and record.next_attempt_at is not None:
        message.next_attempt_at.CopyFrom(_timestamp(record.next_attempt_at))
    return message


def _attempt(record: AttemptRecord) -> webhooks_pb2.DeliveryAttempt:
    return webhooks_pb2.DeliveryAttempt(
        message_id=record.message_id, event_type=record.event_type, attempt_number=record.attempt,
        attempted_at=_timestamp(record.attempted_at), response_status=record.status, error=record.error,
        duration_ms=record.duration_ms, succeeded=record.succeeded)


def _owner() -> str:
    return owner_of(auth.require_principal())


class WebhooksApi(webhooks_pb2_grpc.WebhooksServiceServicer):
    def __init__(self, endpoints: Endpoints, counters: Callable[[], tuple[int, int]]) -> None:
        self._endpoints = endpoints
        self._counters = counters

    async def CreateEndpoint(self, request: webhooks_pb2.CreateEndpointRequest, context: Any
                             ) -> webhooks_pb2.CreateEndpointResponse:
        created = await self._endpoints.create(_owner(), request.url, list(request.event_types), request.description)
        return webhooks_pb2.CreateEndpointResponse(endpoint=_endpoint(created.endpoint), secret=created.secret)

    async def ListEndpoints(self, request: webhooks_pb2.ListEndpointsRequest, context: Any
                            ) -> webhooks_pb2.ListEndpointsResponse:
        return webhooks_pb2.ListEndpointsResponse(
            endpoints=[_endpoint(endpoint) for endpoint in await self._endpoints.owned(_owner())])

    async def GetEndpoint(self, request: webhooks_pb2.GetEndpointRequest, context: Any
                          ) -> webhooks_pb2.GetEndpointResponse:
        return webhooks_pb2.GetEndpointResponse(
            endpoint=_endpoint(await self._endpoints.get(_owner(), request.endpoint_id)))

    async def DeleteEndpoint(self, request: webhooks_pb2.DeleteEndpointRequest, context: Any
                             ) -> webhooks_pb2.DeleteEndpointResponse:
        await self._endpoints.delete(_owner(), request.endpoint_id)
        return webhooks_pb2.DeleteEndpointResponse()

    async def RotateEndpointSecret(self, request: webhooks_pb2.RotateEndpointSecretRequest, context: Any
                                   ) -> webhooks_pb2.RotateEndpointSecretResponse:
        rotated = await self._endpoints.rotate(_owner(), request.endpoint_id)
        return webhooks_pb2.RotateEndpointSecretResponse(endpoint=_endpoint(rotated.endpoint), secret=rotated.secret)

    async def ListDeliveryAttempts(self, request: webhooks_pb2.ListDeliveryAttemptsRequest, context: Any
                                   ) -> webhooks_pb2.ListDeliveryAttemptsResponse:
        attempts = await self._endpoints.attempts(_owner(), request.endpoint_id, request.message_id, request.limit)
        return webhooks_pb2.ListDeliveryAttemptsResponse(attempts=[_attempt(attempt) for attempt in attempts])

    async def ListMessages(self, request: webhooks_pb2.ListMessagesRequest, context: Any
                           ) -> webhooks_pb2.ListMessagesResponse:
        messages = await self._endpoints.messages(_owner(), request.endpoint_id, _STATE_NAMES.get(request.state),
                                                  request.limit)
        return webhooks_pb2.ListMessagesResponse(messages=[_message(message) for message in messages])

    async def RedeliverMessage(self, request: webhooks_pb2.RedeliverMessageRequest, context: Any
                               ) -> webhooks_pb2.RedeliverMessageResponse:
        message = await self._endpoints.redeliver(_owner(), request.endpoint_id, request.message_id)
        return webhooks_pb2.RedeliverMessageResponse(message=_message(message))

    async def GetDeliveryStatus(self, request: webhooks_pb2.GetDeliveryStatusRequest, context: Any
                                ) -> webhooks_pb2.GetDeliveryStatusResponse:
        status = await self._endpoints.status()
        delivered, failed = self._counters()
        return webhooks_pb2.GetDeliveryStatusResponse(
            endpoints_count=status.endpoints, pending_count=status.pending, dead_count=status.dead,
            oldest_pending_seconds=status.oldest_pending_seconds, delivered_count=delivered,
            failed_attempts_count=failed)
