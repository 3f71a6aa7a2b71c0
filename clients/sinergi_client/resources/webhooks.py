"""``/v1/webhooks``: the caller's subscriptions, their delivery log, and redelivery."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cached_property
from typing import Literal, Unpack

from sinergi_client._base_client import AsyncPager, RequestOptions, SyncPage
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import Webhook, WebhookCreate, WebhookCreated, WebhookDelivery, WebhookEventType

WebhookRef = Webhook | str | uuid.UUID
DeliveryRef = WebhookDelivery | str | uuid.UUID
DeliveryStatus = Literal["pending", "succeeded", "failed"]


def _id(webhook: WebhookRef) -> str:
    return str(webhook.id) if isinstance(webhook, Webhook) else str(webhook)


def _delivery(delivery: DeliveryRef) -> str:
    return delivery.id if isinstance(delivery, WebhookDelivery) else str(delivery)


def _create(url: str, event_types: Sequence[WebhookEventType], description: str | None) -> WebhookCreate:
    body = WebhookCreate(url=url, event_types=list(event_types))
    if description is not None:
        body.description = description
    return body


class Webhooks(SyncResource):
    @cached_property
    def with_raw_response(self) -> WebhooksWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return WebhooksWithRawResponse(self)

    def create(self, *, url: str, event_types: Sequence[WebhookEventType], description: str | None = None,
               **options: Unpack[RequestOptions]) -> WebhookCreated:
        """Subscribe ``url``; the reply's ``secret`` (``whsec_…``) is shown this once."""
        body = _create(url, event_types, description)
        return self._client.post("/v1/webhooks", WebhookCreated, body=body.body(), options=options)

    def list(self, *, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> SyncPage[Webhook]:
        return self._client.page("/v1/webhooks", Webhook, params={"limit": limit, "cursor": cursor},
                                 options=options)

    def get(self, webhook: WebhookRef, **options: Unpack[RequestOptions]) -> Webhook:
        return self._client.get(f"/v1/webhooks/{_id(webhook)}", Webhook, options=options)

    def delete(self, webhook: WebhookRef, **options: Unpack[RequestOptions]) -> Webhook:
        """Unsubscribe; the reply is the subscription as it was."""
        return self._client._parse(self._client.send("DELETE", f"/v1/webhooks/{_id(webhook)}", options=options),
                                  Webhook)

    def enable(self, webhook: WebhookRef, **options: Unpack[RequestOptions]) -> Webhook:
        """Re-enable a subscription disabled after a 410 or a spent retry budget."""
        return self._client.post(f"/v1/webhooks/{_id(webhook)}/enable", Webhook, options=options)

    def deliveries(self, webhook: WebhookRef, *, status: DeliveryStatus | None = None, limit: int | None = None,
                   cursor: str | None = None, **options: Unpack[RequestOptions]) -> SyncPage[WebhookDelivery]:
        return self._client.page(f"/v1/webhooks/{_id(webhook)}/deliveries", WebhookDelivery,
                                 params={"status": status, "limit": limit, "cursor": cursor}, options=options)

    def redeliver(self, webhook: WebhookRef, delivery: DeliveryRef,
                  **options: Unpack[RequestOptions]) -> WebhookDelivery:
        """Post a delivery again: the same ``webhook-id`` and body, a fresh retry budget."""
        return self._client.post(f"/v1/webhooks/{_id(webhook)}/deliveries/{_delivery(delivery)}/redeliver",
                                 WebhookDelivery, options=options)


class AsyncWebhooks(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncWebhooksWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncWebhooksWithRawResponse(self)

    async def create(self, *, url: str, event_types: Sequence[WebhookEventType], description: str | None = None,
                     **options: Unpack[RequestOptions]) -> WebhookCreated:
        body = _create(url, event_types, description)
        return await self._client.post("/v1/webhooks", WebhookCreated, body=body.body(), options=options)

    def list(self, *, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> AsyncPager[Webhook]:
        return self._client.page("/v1/webhooks", Webhook, params={"limit": limit, "cursor": cursor},
                                 options=options)

    async def get(self, webhook: WebhookRef, **options: Unpack[RequestOptions]) -> Webhook:
        return await self._client.get(f"/v1/webhooks/{_id(webhook)}", Webhook, options=options)

    async def delete(self, webhook: WebhookRef, **options: Unpack[RequestOptions]) -> Webhook:
        reply = await self._client.send("DELETE", f"/v1/webhooks/{_id(webhook)}", options=options)
        return self._client._parse(reply, Webhook)

    async def enable(self, webhook: WebhookRef, **options: Unpack[RequestOptions]) -> Webhook:
        return await self._client.post(f"/v1/webhooks/{_id(webhook)}/enable", Webhook, options=options)

    def deliveries(self, webhook: WebhookRef, *, status: DeliveryStatus | None = None, limit: int | None = None,
                   cursor: str | None = None, **options: Unpack[RequestOptions]) -> AsyncPager[WebhookDelivery]:
        return self._client.page(f"/v1/webhooks/{_id(webhook)}/deliveries", WebhookDelivery,
                                 params={"status": status, "limit": limit, "cursor": cursor}, options=options)

    async def redeliver(self, webhook: WebhookRef, delivery: DeliveryRef,
                        **options: Unpack[RequestOptions]) -> WebhookDelivery:
        return await self._client.post(f"/v1/webhooks/{_id(webhook)}/deliveries/{_delivery(delivery)}/redeliver",
                                       WebhookDelivery, options=options)


class WebhooksWithRawResponse:
    def __init__(self, resource: Webhooks) -> None:
        self.create = to_raw_response_wrapper(resource.create)
        self.list = to_raw_response_wrapper(resource.list)
        self.get = to_raw_response_wrapper(resource.get)
        self.delete = to_raw_response_wrapper(resource.delete)
        self.enable = to_raw_response_wrapper(resource.enable)
        self.deliveries = to_raw_response_wrapper(resource.deliveries)
        self.redeliver = to_raw_response_wrapper(resource.redeliver)


class AsyncWebhooksWithRawResponse:
    def __init__(self, resource: AsyncWebhooks) -> None:
        self.create = async_to_raw_response_wrapper(resource.create)
        self.list = async_to_raw_response_wrapper(resource.list)
        self.get = async_to_raw_response_wrapper(resource.get)
        self.delete = async_to_raw_response_wrapper(resource.delete)
        self.enable = async_to_raw_response_wrapper(resource.enable)
        self.deliveries = async_to_raw_response_wrapper(resource.deliveries)
        self.redeliver = async_to_raw_response_wrapper(resource.redeliver)
