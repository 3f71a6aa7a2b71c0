"""Readiness, and housekeeping: what the service keeps only for a while (run ``sinergi purge``
daily)."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit
from api.core.db import Database, failure_kind
from api.core.migrate import current_revision, head_revision
from api.core.sql import database_now, rowcount
from api.core.tokens import LEEWAY
from api.core.unit import unit_of
from models import IdempotencyRecord, OfficerSession, RevokedToken


@dataclass(frozen=True)
class Readiness:
    ok: bool
    detail: str = ""
    checks: dict[str, str | None] = field(default_factory=dict)


# The check still running for a database: a probe that gave up on it (its bound passed) leaves
# it to finish by itself (it is bounded too), and the next probe waits for that one instead of
# starting another, so an unanswering database never collects a pile of checks.
_running: weakref.WeakKeyDictionary[Database, asyncio.Future[str | None]] = weakref.WeakKeyDictionary()


async def _revision(db: Database) -> str | None:
    async with db.read() as conn:
        await conn.execute(sa.text("SELECT 1"))
        return await conn.run_sync(current_revision)


def _forget_failure(task: asyncio.Future[str | None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a probe that gave up on it reported it already


_SAID = {
    "busy": "database: busy (every connection in use, or a lock held past its bound)",
    "timeout": "database: did not answer within its bound",
    "unavailable": "database: not reachable",
}


async def readiness(db: Database, bound: float) -> Readiness:
    """Whether the database answers and its schema is the migrations' head, found within
    ``bound`` seconds (the database's own bounds may be longer: the check goes on, and is
    reused by the next probe)."""
    task = _running.get(db)
    if task is None or task.done():
        task = asyncio.ensure_future(_revision(db))
        task.add_done_callback(_forget_failure)
        _running[db] = task
    done, _pending = await asyncio.wait({task}, timeout=bound)
    if not done or task.cancelled():
        return Readiness(False, f"database: no answer within {bound:g} s", {"database": "no answer"})
    exc = task.exception()
    if exc is not None:
        kind = failure_kind(exc) or "unavailable"
        return Readiness(False, f"{_SAID[kind]} ({type(getattr(exc, 'orig', None) or exc).__name__})",
                         {"database": kind})
    current, head = task.result(), head_revision()
    if current != head:
        return Readiness(False, f"migrations: the schema is at {current}, the service needs {head} "
                                "(run sinergi db upgrade)", {"database": "ok", "migration": current, "expected": head})
    return Readiness(True, checks={"database": "ok", "migration": current})


async def purge_expired(session: AsyncSession, now: datetime) -> dict[str, int]:
    """Delete idempotency records past their retention (by the database's clock, as their
    expiry is written and checked), revocations of tokens that have expired anyway (an
    expired token is refused without them), and officers' console sessions that have ended
    (past their absolute end, idle past ``session_idle``, or a sign-in left half done: each is
    refused when its cookie comes back, and nothing else reads them)."""
    keys = await session.execute(
        sa.delete(IdempotencyRecord).where(col(IdempotencyRecord.expires_at) < database_now(session)))
    revoked = await session.execute(
        sa.delete(RevokedToken).where(col(RevokedToken.expires_at) < now - timedelta(seconds=LEEWAY + 60))
    )
    idle = timedelta(seconds=unit_of(session).settings.session_idle)
    sessions = await session.execute(sa.delete(OfficerSession).where(
        sa.or_(col(OfficerSession.expires_at) <= now, col(OfficerSession.last_seen_at) <= now - idle)))
    counts = {"idempotency_records": rowcount(keys), "revoked_tokens": rowcount(revoked),
              "officer_sessions": rowcount(sessions)}
    audit.record(session, "maintenance.purge", idempotency_records=counts["idempotency_records"],
                 revoked_tokens=counts["revoked_tokens"], officer_sessions=counts["officer_sessions"])
    return counts
