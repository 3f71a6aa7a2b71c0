"""The outbox: events written in the same transaction as the change they describe.

Positions come from a per-feed head row that each writing transaction advances just before it
commits, so the order of positions is the order of commits: a reader that has seen position
``n`` has seen every event committed before it, and the feed never skips one (a bare sequence
would not give that on PostgreSQL, where a later value can commit first).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import bulk, clock, ids
from api.core.context import PendingEvent, RequestContext
from api.core.sql import table_of
from api.core.unit import unit_of
from models import Event, EventHead
from models.regions import province_of


def emit(
    session: AsyncSession,
    type: str,
    data: dict[str, Any],
    *,
    region: str | None,
    audience: Iterable[str] = (),
) -> None:
    """Queue an event in ``session``'s unit (see :meth:`api.core.unit.Unit.emit`); outside a
    unit this raises."""
    unit_of(session).emit(type, data, region=region, audience=audience)


def emit_taken_in(
    session: AsyncSession,
    type: str,
    data: dict[str, Any],
    *,
    region: str | None,
    intake: str | None,
    audience: Iterable[str] = (),
) -> None:
    """:func:`emit` for an event about someone the border intake of the province ``intake``
    took in: filed under ``region`` (in its province's feed: the home region reads it there),
    and, when ``region`` lies in another province (or is not known), also under ``intake`` in
    the intake province's feed, where the intake agency and the agencies of the whole province
    read it (as they read the record: :func:`api.core.access.taken_in`)."""
    home = province_of(region)
    if region is not None:
        emit(session, type, data, region=region, audience=audience)
    if intake is not None and home != province_of(intake):
        emit(session, type, data, region=province_of(intake), audience=audience)


def feed_key(region: str | None, default_key: str) -> str:
    """The feed of ``region``'s province; ``default_key`` (the settings' ``audit_chain``) for
    events without a region."""
    return province_of(region) or default_key


async def _advance(session: AsyncSession, key: str, n: int) -> int:
    """Advance the head of feed ``key`` by ``n``; returns the new last position."""
    head = table_of(EventHead)
    stmt = sa.update(head).where(head.c.key == key).values(pos=head.c.pos + n).returning(head.c.pos)
    row = (await session.execute(stmt)).first()
    if row is None:
        await _ensure_head(session, key)
        row = (await session.execute(stmt)).first()
    assert row is not None
    return int(row[0])


# PostgreSQL: the head advanced (made for the feed's first event: no head can be missing) and
# the events inserted in one statement, sent with the unit's COMMIT, so the head's row lock (held
# to the commit) is taken as late as possible and costs no round trip of its own. ``pos`` in the
# rows is the event's offset in the unit (0, 1, ...).
_PG_FLUSH = """
    WITH h AS (INSERT INTO event_head (key, pos) VALUES (:key, :n) ON CONFLICT (key) DO UPDATE
               SET pos = event_head.pos + EXCLUDED.pos RETURNING pos)
    INSERT INTO event (key, pos, id, type, occurred_at, region, audience, data)
    SELECT :key, h.pos - :n + 1 + r.pos, r.id, r.type, r.occurred_at, r.region, r.audience, r.data
      FROM h, json_populate_recordset(NULL::event, :rows) AS r
"""


async def _ensure_head(session: AsyncSession, key: str) -> None:
    """Create the head of feed ``key`` (its first event) unless another unit just did (SQLite)."""
    await session.execute(sqlite_insert(table_of(EventHead)).values(key=key, pos=0).on_conflict_do_nothing())


def _rows(ctx: RequestContext, default_key: str) -> dict[str, list[dict[str, Any]]]:
    """The unit's events as rows by feed, each ``pos`` its offset in the feed's part (0, 1, ...)."""
    by_key: dict[str, list[PendingEvent]] = {}
    for ev in ctx.events:
        by_key.setdefault(feed_key(ev.region, default_key), []).append(ev)
    now = clock.now()
    return {
        key: [
            {
                "key": key,
                "pos": i,
                "id": eid,
                "type": ev.type,
                "occurred_at": now,
                "region": ev.region,
                "audience": " ".join(ev.audience),
                "data": orjson.dumps(ev.data).decode(),
            }
            for i, (ev, eid) in enumerate(zip(events, ids.new_ids(len(events)), strict=True))
        ]
        for key, events in sorted(by_key.items())
    }


def statements(ctx: RequestContext, default_key: str) -> list[tuple[str, dict[str, Any]]]:
    """PostgreSQL: the statements that write the unit's events (one a feed, feeds in name order,
    heads advanced in them), which the unit sends with its COMMIT; the events are taken."""
    if not ctx.events:
        return []
    out = [(_PG_FLUSH, {"key": key, "n": len(rows), "rows": orjson.dumps(rows).decode()})
           for key, rows in _rows(ctx, default_key).items()]
    ctx.events.clear()
    return out


async def flush(session: AsyncSession, ctx: RequestContext, default_key: str) -> None:
    """Elsewhere than on PostgreSQL (:func:`statements` there): write the unit's events now,
    feeds in name order."""
    if not ctx.events:
        return
    for key, rows in _rows(ctx, default_key).items():
        last = await _advance(session, key, len(rows))
        first = last - len(rows) + 1
        for row in rows:
            row["pos"] += first
        await bulk.insert_rows(session, table_of(Event), rows)
    ctx.events.clear()
