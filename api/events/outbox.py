"""The outbox: events written in the same transaction as the change they describe.

Positions come from a per-feed head row that each writing transaction advances just before it
commits, so the order of positions is the order of commits: a reader that has seen position
``n`` has seen every event committed before it, and the feed never skips one (a bare sequence
would not give that on PostgreSQL, where a later value can commit first).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from api import bulk
from api.context import PendingEvent, RequestContext, context_of
from api.settings import get_settings
from models import Event, EventHead, utcnow
from models.regions import province_of


def emit(
    session: AsyncSession,
    type: str,
    data: dict[str, Any],
    *,
    region: str | None,
    audience: Iterable[str] = (),
) -> None:
    """Queue an event for the request's transaction. ``region``: callers whose jurisdiction
    covers it may see it; ``audience``: agencies that may see it wherever they are."""
    context_of(session).events.append(PendingEvent(type, data, region, tuple(sorted(set(audience)))))


def feed_key(region: str | None) -> str:
    return province_of(region) or get_settings().audit_chain


async def _advance(session: AsyncSession, key: str, n: int) -> int:
    """Advance the head of feed ``key`` by ``n``; returns the new last position."""
    stmt = (
        sa.update(EventHead.__table__)
        .where(EventHead.key == key)
        .values(pos=EventHead.pos + n)
        .returning(EventHead.pos)
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        if session.bind.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        await session.execute(insert(EventHead.__table__).values(key=key, pos=0).on_conflict_do_nothing())
        row = (await session.execute(stmt)).first()
    assert row is not None
    return int(row[0])


async def flush(session: AsyncSession, ctx: RequestContext) -> None:
    if not ctx.events:
        return
    by_key: dict[str, list[PendingEvent]] = {}
    for ev in ctx.events:
        by_key.setdefault(feed_key(ev.region), []).append(ev)
    now = utcnow()
    for key in sorted(by_key):
        events: Sequence[PendingEvent] = by_key[key]
        last = await _advance(session, key, len(events))
        first = last - len(events) + 1
        await bulk.insert_rows(
            session,
            Event.__table__,
            [
                {
                    "key": key,
                    "pos": first + i,
                    "id": uuid.uuid4(),
                    "type": ev.type,
                    "occurred_at": now,
                    "region": ev.region,
                    "audience": " ".join(ev.audience),
                    "data": orjson.dumps(ev.data).decode(),
                }
                for i, ev in enumerate(events)
            ],
        )
    ctx.events.clear()
