"""The audit chain's queries for readers (the Inspektorat's list)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import pagination
from api.core.pagination import Position, Slice
from models import Agency, AuditEvent, AuditSubject


def agencies_within(jurisdiction: str) -> sa.Select:
    """The codes of the agencies whose jurisdiction lies within ``jurisdiction`` (``61.07``
    covers ``61.07`` and ``61.07.07``, not ``61.070``)."""
    where = col(Agency.jurisdiction)
    return sa.select(col(Agency.code)).where(
        sa.or_(where == jurisdiction, where.startswith(jurisdiction + ".", autoescape=True))
    )


async def list_events(
    session: AsyncSession,
    *,
    chain: str,
    after: Position | None,
    limit: int,
    client_id: str | None = None,
    agency: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    within: str | None = None,
) -> Slice[AuditEvent]:
    """Newest first; ``after`` (``(seq,)``) continues below that sequence number. ``within``:
    only the entries made by agencies whose jurisdiction lies within that region."""
    stmt = select(AuditEvent).where(AuditEvent.chain == chain)
    if within is not None:
        stmt = stmt.where(col(AuditEvent.agency).in_(agencies_within(within)))
    if client_id:
        stmt = stmt.where(AuditEvent.client_id == client_id)
    if agency:
        stmt = stmt.where(AuditEvent.agency == agency)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if resource_type or resource_id:
        sub = select(AuditSubject.event_id)
        if resource_type:
            sub = sub.where(AuditSubject.resource_type == resource_type)
        if resource_id:
            sub = sub.where(AuditSubject.resource_id == resource_id)
        stmt = stmt.where(col(AuditEvent.id).in_(sub))
    if since:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    if until:
        stmt = stmt.where(AuditEvent.occurred_at < until)
    return await pagination.read_page(session, stmt, [col(AuditEvent.seq)], after, limit, descending=True)
