"""Webhook queries, in one place: whose subscriptions a caller sees, and the worker's claims.

:func:`readable` is the rule for seeing subscriptions: those of the caller's own agency (any of
its clients). Their deliveries are read through a subscription found by it. The events a
subscription receives are the feed's events its owner may see, by the feed's own rule
(:func:`api.events.service.visible`), never a second one.

The worker's writes claim their rows so that several workers never take the same one:
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (a row another worker holds is passed over, not
waited for), and on SQLite the database's single writer (every writing transaction is
``BEGIN IMMEDIATE``). A claimed delivery carries a lease (``lease_until``, ``lease_owner``) and
its attempt number is taken in the claim, so an attempt belongs to one worker; a worker that
dies leaves its lease to run out, and the next claim is the next attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core import bulk, pagination
from api.core.access import visible_or_404
from api.core.context import Caller
from api.core.db import execute_text
from api.core.pagination import Position, Slice
from api.core.sql import dialect_of, rowcount, table_of
from api.events.service import visible
from models import (
    Agency,
    AgencyKind,
    ApiClient,
    DeliveryStatus,
    Event,
    EventHead,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookStatus,
)

_WEBHOOK = table_of(Webhook)
_DELIVERY = table_of(WebhookDelivery)
_ATTEMPT = table_of(WebhookAttempt)


def readable(caller: Caller) -> SelectOfScalar[Webhook]:
    """The subscriptions ``caller`` may see and manage: its agency's. The one place that decides it."""
    return select(Webhook).where(col(Webhook.agency_code) == caller.agency)


async def get_readable(session: AsyncSession, caller: Caller, webhook_id: uuid.UUID) -> Webhook:
    return await visible_or_404(session, readable(caller).where(col(Webhook.id) == webhook_id), "webhook")


async def readable_page(session: AsyncSession, caller: Caller, *, after: Position | None, limit: int) -> Slice[Webhook]:
    keys = [col(Webhook.created_at), col(Webhook.id)]
    return await pagination.read_page(session, readable(caller), keys, after, limit, descending=True)


async def deliveries_page(
    session: AsyncSession, webhook: Webhook, *, status: DeliveryStatus | None, after: Position | None, limit: int
) -> Slice[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == webhook.id)
    if status is not None:
        stmt = stmt.where(col(WebhookDelivery.status) == status)
    keys = [col(WebhookDelivery.created_at), col(WebhookDelivery.id)]
    return await pagination.read_page(session, stmt, keys, after, limit, descending=True)


async def get_delivery(session: AsyncSession, webhook: Webhook, delivery_id: uuid.UUID) -> WebhookDelivery:
    stmt = select(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == webhook.id,
                                         col(WebhookDelivery.id) == delivery_id)
    return await visible_or_404(session, stmt, "delivery")


async def attempts_of(session: AsyncSession, delivery_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[WebhookAttempt]]:
    out: dict[uuid.UUID, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    if not delivery_ids:
        return out
    stmt = (select(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(list(delivery_ids)))
            .order_by(col(WebhookAttempt.delivery_id), col(WebhookAttempt.attempt)))
    for a in (await session.exec(stmt)).all():
        out[a.delivery_id].append(a)
    return out


async def feed_head(session: AsyncSession, key: str) -> int:
    """The last position of feed ``key`` (0 before its first event)."""
    pos = (await session.execute(sa.select(col(EventHead.pos)).where(col(EventHead.key) == key))).scalar()
    return int(pos or 0)


async def requeue(session: AsyncSession, webhook_id: uuid.UUID, *, now: datetime, budget: int,
                  delivery_id: uuid.UUID | None = None, only_failed: bool = True) -> int:
    """Deliveries of a subscription back to pending, due now, with a fresh retry budget
    (the same ids: the same ``webhook-id``)."""
    stmt = sa.update(_DELIVERY).where(_DELIVERY.c.webhook_id == webhook_id)
    if delivery_id is not None:
        stmt = stmt.where(_DELIVERY.c.id == delivery_id)
    if only_failed:
        stmt = stmt.where(_DELIVERY.c.status == DeliveryStatus.failed)
    stmt = stmt.values(status=DeliveryStatus.pending, next_attempt_at=now,
                       last_attempt=_DELIVERY.c.attempts + budget)
    return rowcount(await session.execute(stmt))


# --- the worker: turning events into deliveries ----------------------------------------------


async def webhooks_behind(conn: Any, limit: int) -> list[uuid.UUID]:
    """Active subscriptions whose feed has events past their position (a read, no lock)."""
    head, client = table_of(EventHead), table_of(ApiClient)
    stmt = (sa.select(_WEBHOOK.c.id)
            .join(head, head.c.key == _WEBHOOK.c.feed_key)
            .join(client, client.c.client_id == _WEBHOOK.c.client_id)
            .where(_WEBHOOK.c.status == WebhookStatus.active, _WEBHOOK.c.position < head.c.pos,
                   client.c.disabled_at.is_(None))
            .order_by(_WEBHOOK.c.id).limit(limit))
    return [r[0] for r in (await conn.execute(stmt)).all()]


@dataclass(slots=True)
class Subscriber:
    webhook: Webhook
    caller: Caller | None  # None: its client is disabled (nothing is delivered meanwhile)


async def lock_subscriber(session: AsyncSession, webhook_id: uuid.UUID) -> Subscriber | None:
    """The active subscription ``webhook_id`` locked for this transaction (``None`` if another
    worker holds it, or it is gone or disabled), with the caller its owner's token was: the
    owner's agency as it is now, and the scopes the subscribing token held, still allowed to
    its client."""
    stmt = (select(Webhook).where(col(Webhook.id) == webhook_id, col(Webhook.status) == WebhookStatus.active)
            .with_for_update(skip_locked=True))
    webhook = (await session.exec(stmt)).first()
    if webhook is None:
        return None
    row = (await session.execute(
        sa.select(col(ApiClient.scopes), col(ApiClient.disabled_at), col(Agency.kind), col(Agency.jurisdiction))
        .join(Agency, col(Agency.code) == col(ApiClient.agency_code))
        .where(col(ApiClient.client_id) == webhook.client_id))).first()
    if row is None or row[1] is not None:
        return Subscriber(webhook, None)
    scopes = frozenset(webhook.scopes.split()) & frozenset(row[0].split())
    caller = Caller(client_id=webhook.client_id, agency=webhook.agency_code, agency_kind=AgencyKind(row[2]),
                    jurisdiction=row[3], scopes=scopes, token_id="")
    return Subscriber(webhook, caller)


@dataclass(slots=True)
class FeedEvent:
    pos: int
    id: uuid.UUID
    type: str
    occurred_at: datetime
    data: str


async def events_for(session: AsyncSession, sub: Subscriber, caller: Caller, *, upto: int,
                     limit: int) -> list[FeedEvent]:
    """The events after the subscription's position, up to ``upto``, that its owner may see on
    the feed (:func:`api.events.service.visible`) and that it subscribed to; oldest first."""
    types = sub.webhook.event_types.split()
    stmt = (sa.select(col(Event.pos), col(Event.id), col(Event.type), col(Event.occurred_at), col(Event.data))
            .where(col(Event.key) == sub.webhook.feed_key, col(Event.pos) > sub.webhook.position,
                   col(Event.pos) <= upto, visible(caller), col(Event.type).in_(types))
            .order_by(col(Event.pos)).limit(limit))
    return [FeedEvent(int(r[0]), r[1], r[2], r[3], r[4]) for r in (await session.execute(stmt)).all()]


async def add_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await bulk.insert_rows(session, _DELIVERY, rows, on_conflict_do_nothing=["webhook_id", "event_id"])


async def move_position(session: AsyncSession, webhook_id: uuid.UUID, position: int) -> None:
    await session.execute(sa.update(_WEBHOOK).where(_WEBHOOK.c.id == webhook_id).values(position=position))


# --- the worker: claiming and recording attempts ---------------------------------------------


@dataclass(slots=True)
class Claimed:
    id: uuid.UUID
    webhook_id: uuid.UUID
    attempt: int
    last_attempt: int
    body: str
    url: str
    secret_enc: str


async def any_due(conn: Any, now: datetime) -> bool:
    """Whether some delivery of an active subscription is due (a read, no lock)."""
    stmt = (sa.select(_DELIVERY.c.id).join(_WEBHOOK, _WEBHOOK.c.id == _DELIVERY.c.webhook_id)
            .where(_DELIVERY.c.status == DeliveryStatus.pending, _DELIVERY.c.next_attempt_at <= now,
                   sa.or_(_DELIVERY.c.lease_until.is_(None), _DELIVERY.c.lease_until < now),
                   _WEBHOOK.c.status == WebhookStatus.active).limit(1))
    return (await conn.execute(stmt)).first() is not None


async def claim(session: AsyncSession, *, worker: str, now: datetime, lease_until: datetime,
                limit: int) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries of active subscriptions for ``worker``: each gets its
    next attempt number and a lease. Rows another worker holds are skipped (PostgreSQL)."""
    due = (sa.select(_DELIVERY.c.id).join(_WEBHOOK, _WEBHOOK.c.id == _DELIVERY.c.webhook_id)
           .where(_DELIVERY.c.status == DeliveryStatus.pending, _DELIVERY.c.next_attempt_at <= now,
                  sa.or_(_DELIVERY.c.lease_until.is_(None), _DELIVERY.c.lease_until < now),
                  _WEBHOOK.c.status == WebhookStatus.active)
           .order_by(_DELIVERY.c.next_attempt_at, _DELIVERY.c.event_pos).limit(limit))
    if dialect_of(session) == "postgresql":
        due = due.with_for_update(of=_DELIVERY, skip_locked=True)
    stmt = (sa.update(_DELIVERY).where(_DELIVERY.c.id.in_(due.scalar_subquery()))
            .values(attempts=_DELIVERY.c.attempts + 1, lease_owner=worker, lease_until=lease_until)
            .returning(_DELIVERY.c.id, _DELIVERY.c.webhook_id, _DELIVERY.c.attempts, _DELIVERY.c.last_attempt,
                       _DELIVERY.c.body))
    rows = (await session.execute(stmt)).all()
    if not rows:
        return []
    hooks = {r[0]: (r[1], r[2]) for r in (await session.execute(
        sa.select(_WEBHOOK.c.id, _WEBHOOK.c.url, _WEBHOOK.c.secret_enc)
        .where(_WEBHOOK.c.id.in_({r[1] for r in rows})))).all()}
    return [Claimed(r[0], r[1], int(r[2]), int(r[3]), r[4], *hooks[r[1]]) for r in rows if r[1] in hooks]


async def still_there(session: AsyncSession, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of the deliveries ``ids`` still exist (their subscription may have been deleted
    meanwhile), locked until the commit so that a deletion waits for the log written now."""
    stmt = sa.select(_DELIVERY.c.id).where(_DELIVERY.c.id.in_(list(ids)))
    if dialect_of(session) == "postgresql":
        stmt = stmt.with_for_update()
    return {r[0] for r in (await session.execute(stmt)).all()}


async def record_attempts(session: AsyncSession, attempts: list[dict[str, Any]]) -> None:
    """The delivery log: one row per attempt (unique per delivery and attempt number)."""
    await bulk.insert_rows(session, _ATTEMPT, attempts)


_PG_SETTLE = """
    UPDATE webhook_delivery AS d
       SET status = x.b_status, next_attempt_at = x.b_next, last_status_code = x.b_code, last_error = x.b_error,
           delivered_at = x.b_delivered, lease_until = NULL, lease_owner = NULL
      FROM json_to_recordset(CAST(:rows AS json)) AS x(b_id uuid, b_attempt integer, b_status text,
                                                       b_next timestamptz, b_code integer, b_error text,
                                                       b_delivered timestamptz)
     WHERE d.id = x.b_id AND d.attempts = x.b_attempt AND d.lease_owner = :worker
"""


async def settle(session: AsyncSession, worker: str, outcomes: list[dict[str, Any]]) -> None:
    """Each claimed delivery's outcome, if ``worker`` still holds that attempt's lease:
    ``{"b_id", "b_attempt", "b_status", "b_next", "b_code", "b_error", "b_delivered"}``."""
    if not outcomes:
        return
    if dialect_of(session) == "postgresql":  # one statement for the batch, not one per delivery
        await execute_text(session, _PG_SETTLE, {"worker": worker, "rows": orjson.dumps(outcomes).decode()})
        return
    stmt = (sa.update(_DELIVERY)
            .where(_DELIVERY.c.id == sa.bindparam("b_id"), _DELIVERY.c.attempts == sa.bindparam("b_attempt"),
                   _DELIVERY.c.lease_owner == worker)
            .values(status=sa.bindparam("b_status"), next_attempt_at=sa.bindparam("b_next"),
                    last_status_code=sa.bindparam("b_code"), last_error=sa.bindparam("b_error"),
                    delivered_at=sa.bindparam("b_delivered"), lease_until=None, lease_owner=None))
    await session.execute(stmt, outcomes, execution_options={"synchronize_session": False})


async def disable(session: AsyncSession, webhook_id: uuid.UUID, reason: str, now: datetime) -> bool:
    """Disable an active subscription; whether it was active."""
    stmt = (sa.update(_WEBHOOK).where(_WEBHOOK.c.id == webhook_id, _WEBHOOK.c.status == WebhookStatus.active)
            .values(status=WebhookStatus.disabled, disabled_reason=reason, disabled_at=now, updated_at=now))
    return rowcount(await session.execute(stmt)) > 0
