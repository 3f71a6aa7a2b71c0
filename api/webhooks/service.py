"""Webhook subscriptions: subscribing, reading, deleting, the delivery log, redelivering,
re-enabling.

A subscription belongs to its agency (:func:`api.webhooks.repository.readable`); another
agency's is a 404. It receives what the feed (``GET /v1/events``) would show the token that
subscribed: the events of its agency's province that the agency may see, of the families that
token's scopes cover (capped by what its client is still allowed), and of the types it names.
The feed needs ``events:read``; so does subscribing (403 without it). Delivery starts with the
events committed after the subscription (its position is the feed's head at that moment).

While the subscribing client is disabled nothing is delivered; a subscription disabled (by a
``410 Gone`` or a retry budget spent, :mod:`api.webhooks.worker`) is re-enabled by its agency
(:func:`enable`): what it missed meanwhile is delivered then, nothing is lost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, clock, crypto
from api.core import text as text_rules
from api.core.context import Caller
from api.core.errors import Forbidden, ValidationFailed
from api.core.outbox import feed_key
from api.core.pagination import Position, Slice
from api.core.scopes import Scope
from api.core.unit import unit_of
from api.webhooks import net, repository, signing
from api.webhooks.schemas import WebhookCreate
from models import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery, WebhookStatus


@dataclass(slots=True)
class DeliveryDetail:
    delivery: WebhookDelivery
    log: list[WebhookAttempt]


async def create(session: AsyncSession, caller: Caller, data: WebhookCreate) -> tuple[Webhook, str]:
    """Subscribe ``data.url``; returns the subscription and its signing secret (shown once)."""
    if not caller.has(Scope.events_read):
        raise Forbidden(Scope.events_read)  # a subscription receives what the feed shows
    settings = unit_of(session).settings
    try:
        await net.check_url(data.url, settings.webhook_private_allowed)
    except net.UnsafeURL as exc:
        raise ValidationFailed("The URL may not receive webhooks", errors=[{"field": "url", "message": str(exc)}]) from None
    secret = signing.new_secret()
    key = feed_key(caller.jurisdiction, settings.audit_chain)
    now = clock.now()
    webhook = Webhook(
        agency_code=caller.agency,
        client_id=caller.client_id,
        url=data.url,
        event_types=" ".join(data.event_types),
        description=data.description,
        scopes=" ".join(sorted(caller.scopes)),
        secret_enc=crypto.encrypt(secret, context=signing.CONTEXT, key=settings.data_key_bytes),
        feed_key=key,
        position=await repository.feed_head(session, key),
        created_at=now,
        updated_at=now,
    )
    session.add(webhook)
    await session.flush()
    audit.record(session, "webhook.create", resource_type="webhook", resource_id=webhook.id,
                 url=text_rules.bounded(data.url, text_rules.MAX_DETAIL_TEXT), event_types=data.event_types,
                 position=webhook.position)
    return webhook, secret


async def list_webhooks(session: AsyncSession, caller: Caller, *, after: Position | None, limit: int) -> Slice[Webhook]:
    page = await repository.readable_page(session, caller, after=after, limit=limit)
    audit.record(session, "webhook.list", resource_type="webhook", count=len(page.items))
    return page


async def get(session: AsyncSession, caller: Caller, webhook_id: uuid.UUID) -> Webhook:
    webhook = await repository.get_readable(session, caller, webhook_id)
    audit.record(session, "webhook.read", resource_type="webhook", resource_id=webhook.id)
    return webhook


async def delete(session: AsyncSession, caller: Caller, webhook_id: uuid.UUID) -> Webhook:
    """Unsubscribe: the subscription and its delivery log go; nothing more is posted."""
    webhook = await repository.get_readable(session, caller, webhook_id)
    await session.delete(webhook)
    await session.flush()
    audit.record(session, "webhook.delete", resource_type="webhook", resource_id=webhook.id,
                 url=text_rules.bounded(webhook.url, text_rules.MAX_DETAIL_TEXT))
    return webhook


async def deliveries(
    session: AsyncSession, caller: Caller, webhook_id: uuid.UUID, *, status: DeliveryStatus | None,
    after: Position | None, limit: int,
) -> tuple[Slice[WebhookDelivery], dict[uuid.UUID, list[WebhookAttempt]]]:
    """The subscription's deliveries, newest first, each with its attempts."""
    webhook = await repository.get_readable(session, caller, webhook_id)
    page = await repository.deliveries_page(session, webhook, status=status, after=after, limit=limit)
    log = await repository.attempts_of(session, [d.id for d in page.items])
    audit.record(session, "webhook.deliveries", resource_type="webhook", resource_id=webhook.id,
                 count=len(page.items))
    return page, log


async def redeliver(session: AsyncSession, caller: Caller, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> DeliveryDetail:
    """Post a delivery again (whatever became of it), with the same ``webhook-id`` and body,
    as soon as a worker is free (once the subscription is enabled, if it is not)."""
    webhook = await repository.get_readable(session, caller, webhook_id)
    delivery = await repository.get_delivery(session, webhook, delivery_id)
    settings = unit_of(session).settings
    await repository.requeue(session, webhook.id, now=clock.now(), budget=settings.webhook_max_attempts,
                             delivery_id=delivery.id, only_failed=False)
    await session.refresh(delivery)
    audit.record(session, "webhook.redeliver", resource_type="webhook", resource_id=webhook.id,
                 subjects=[("webhook_delivery", delivery.id)], attempts=delivery.attempts)
    return DeliveryDetail(delivery, (await repository.attempts_of(session, [delivery.id]))[delivery.id])


async def enable(session: AsyncSession, caller: Caller, webhook_id: uuid.UUID) -> Webhook:
    """Re-enable a disabled subscription: its failed deliveries are tried again (fresh retry
    budget) and the events it missed are delivered. Enabling an active one changes nothing."""
    webhook = await repository.get_readable(session, caller, webhook_id)
    if webhook.status == WebhookStatus.active:
        audit.record(session, "webhook.enable", resource_type="webhook", resource_id=webhook.id, changed=False)
        return webhook
    settings = unit_of(session).settings
    now = clock.now()
    was = webhook.disabled_reason
    webhook.status = WebhookStatus.active
    webhook.disabled_reason = None
    webhook.disabled_at = None
    webhook.updated_at = now
    session.add(webhook)
    await session.flush()
    requeued = await repository.requeue(session, webhook.id, now=now, budget=settings.webhook_max_attempts)
    audit.record(session, "webhook.enable", resource_type="webhook", resource_id=webhook.id, changed=True,
                 was=was, requeued=requeued)
    return webhook
