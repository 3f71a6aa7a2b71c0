"""Housekeeping: what the service keeps only for a while (run ``sinergi purge`` daily)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit
from api.core.sql import database_now, rowcount
from api.core.tokens import LEEWAY
from models import IdempotencyRecord, RevokedToken


async def purge_expired(session: AsyncSession, now: datetime) -> dict[str, int]:
    """Delete idempotency records past their retention (by the database's clock, as their
    expiry is written and checked) and revocations of tokens that have expired anyway (an
    expired token is refused without them)."""
    keys = await session.execute(
        sa.delete(IdempotencyRecord).where(col(IdempotencyRecord.expires_at) < database_now(session)))
    revoked = await session.execute(
        sa.delete(RevokedToken).where(col(RevokedToken.expires_at) < now - timedelta(seconds=LEEWAY + 60))
    )
    counts = {"idempotency_records": rowcount(keys), "revoked_tokens": rowcount(revoked)}
    audit.record(session, "maintenance.purge", idempotency_records=counts["idempotency_records"],
                 revoked_tokens=counts["revoked_tokens"])
    return counts
