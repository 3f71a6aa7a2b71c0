"""The change feed: events a caller may see, in commit order, from a cursor.

A caller sees the events of its province's feed (:func:`api.events.outbox.feed_key`) whose
region its jurisdiction covers or whose audience names its agency, and only of the families it
holds the read scope for (``notice.*`` needs ``notices:read``...). Referral events, like
referrals, are seen by their two parties and by oversight agencies over their region only. Alert
events are seen by their audience only (the police and task force alerted, named when the alert
was raised: :func:`api.core.access.is_alerted`), whoever else covers their region. Positions are assigned at
commit, in commit order, so ``pos > cursor`` never skips an event that commits later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, pagination
from api.core.access import in_jurisdiction
from api.core.context import Caller
from api.core.outbox import feed_key
from api.core.scopes import Scope
from api.core.unit import unit_of
from models import Event

# event family (type prefix) -> the scope needed to see it; other families need no extra scope
FAMILY_SCOPES: dict[str, Scope] = {
    "returnee.": Scope.returnees_read,
    "notice.": Scope.notices_read,
    "referral.": Scope.referrals_read,
    "manifest.": Scope.manifests_read,
    "departure.": Scope.register_read,
    "register.": Scope.register_read,
    "alert.": Scope.alerts_read,
}

# families whose region makes them visible only to oversight agencies (the parties are the audience)
PARTY_ONLY_FAMILIES = ("referral.",)

# families seen by their audience only, oversight or not (their region files them in a feed)
AUDIENCE_ONLY_FAMILIES = ("alert.",)


@dataclass(slots=True)
class FeedItem:
    pos: int
    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]


def visible(caller: Caller) -> sa.ColumnElement[bool]:
    """SQL condition: the caller may see the event."""
    audience = (sa.literal(" ") + col(Event.audience) + sa.literal(" ")).contains(
        f" {caller.agency} ", autoescape=True
    )
    by_region = in_jurisdiction(caller, col(Event.region))
    if not caller.is_oversight:
        # A referral is seen by its two parties, and by oversight agencies over its region.
        for prefix in PARTY_ONLY_FAMILIES:
            by_region = sa.and_(by_region, sa.not_(col(Event.type).startswith(prefix, autoescape=True)))
    for prefix in AUDIENCE_ONLY_FAMILIES:
        by_region = sa.and_(by_region, sa.not_(col(Event.type).startswith(prefix, autoescape=True)))
    cond = sa.or_(by_region, audience)
    for prefix, scope in FAMILY_SCOPES.items():
        if not caller.has(scope):
            cond = sa.and_(cond, sa.not_(col(Event.type).startswith(prefix, autoescape=True)))
    return cond


async def read_feed(session: AsyncSession, caller: Caller, *, after: int, limit: int) -> list[FeedItem]:
    """Up to ``limit`` events after position ``after``, oldest first (audited as one read)."""
    key = feed_key(caller.jurisdiction, unit_of(session).settings.audit_chain)
    keys = [col(Event.pos)]
    stmt = sa.select(col(Event.pos), col(Event.id), col(Event.type), col(Event.occurred_at), col(Event.data)).where(
        col(Event.key) == key, visible(caller)
    )
    page = pagination.cut((await session.execute(pagination.paged(stmt, keys, (after,), limit))).all(), keys, limit)
    items = [FeedItem(r[0], str(r[1]), r[2], r[3], orjson.loads(r[4])) for r in page.items]
    audit.record(session, "event.list", resource_type="event_feed", resource_id=key, after=after, count=len(items))
    return items
