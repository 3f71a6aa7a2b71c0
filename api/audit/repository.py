"""The audit chain's queries for readers (the Inspektorat's list)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import pagination
from api.core.pagination import Position, Slice
from models import AuditEvent, AuditSubject


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
) -> Slice[AuditEvent]:
    """Newest first; ``after`` (``(seq,)``) continues below that sequence number."""
    stmt = select(AuditEvent).where(AuditEvent.chain == chain)
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
