"""Referral queries, in one place: who may see which referral, and the reads and writes built on it.

:func:`readable` is THE rule for seeing referrals (see :mod:`api.referrals.service` for who
that is); every query of referrals for a caller starts from it. ``tests/test_readable.py``
fails when a query of ``referral`` is built anywhere else. The one query that does not start
from it is the demo loader's check that its referrals are loaded (:func:`any_with_sender_ref_prefix`,
no caller, a yes or no).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core import access, clock, db, pagination, preconditions
from api.core.context import Caller
from api.core.pagination import DEFAULT_LIMIT, Position, Slice
from api.core.unit import unit_of
from models import OPEN_STATUSES, Referral, ReferralHistory, ReferralStatus

OPEN = sorted(s.value for s in OPEN_STATUSES)


# --- the readable set ------------------------------------------------------------------------


def readable(caller: Caller) -> SelectOfScalar[Referral]:
    """The referrals ``caller`` may see: those its agency sent or received and, for an
    oversight agency, those with any of their three regions in its jurisdiction. The one
    place that decides it."""
    party = _party(caller)
    if not caller.is_oversight:
        return select(Referral).where(party)
    return select(Referral).where(sa.or_(party, _touching(caller)))


def counted(caller: Caller) -> sa.ColumnElement[bool]:
    """The referrals in ``caller``'s statistics: those its agency sent or received and those
    with any of their three regions in its jurisdiction, whatever the caller's kind. The
    figures of a jurisdiction are its figures for every agency reporting on it (a province's
    DP3A as well as a district's task force): they are counts, rounded and suppressed, never a
    record, so they are not bound by who may read the records (:func:`readable`)."""
    return sa.or_(_party(caller), _touching(caller))


def _party(caller: Caller) -> sa.ColumnElement[bool]:
    return sa.or_(col(Referral.from_agency) == caller.agency, col(Referral.to_agency) == caller.agency)


def _touching(caller: Caller) -> sa.ColumnElement[bool]:
    return sa.or_(
        access.in_jurisdiction(caller, col(Referral.from_region)),
        access.in_jurisdiction(caller, col(Referral.to_region)),
        access.in_jurisdiction(caller, col(Referral.subject_region)),
    )


async def get_readable(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Referral:
    """The referral ``id`` if ``caller`` may see it, else :class:`NotFound` (as if absent)."""
    return await access.visible_or_404(session, readable(caller).where(col(Referral.id) == id), "referral")


async def shown(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Referral:
    """:func:`get_readable` for a reply only: a copy not in the session (to show, not to change)."""
    return await access.shown_by_id(session, caller, readable, id, "referral")



async def sender_ref_taken(session: AsyncSession, caller: Caller, sender_ref: str) -> uuid.UUID | None:
    """The id of the caller's agency's referral with this ``sender_ref``, if there is one."""
    stmt = readable(caller).with_only_columns(col(Referral.id)).where(
        col(Referral.from_agency) == caller.agency, col(Referral.sender_ref) == sender_ref
    )
    return (await session.execute(stmt)).scalar()


def _open_to(caller: Caller) -> SelectOfScalar[Referral]:
    """Readable referrals addressed to the caller's agency and still open."""
    return readable(caller).where(col(Referral.to_agency) == caller.agency, col(Referral.status).in_(OPEN))


async def open_referral_for(session: AsyncSession, caller: Caller, returnee_id: uuid.UUID) -> Referral | None:
    """The latest open referral (requested, received, accepted, in-progress, on-hold)
    addressed to the caller's agency about ``returnee_id``, if there is one: while it is open
    the receiver may read that returnee even outside its jurisdiction, with the referral as the
    purpose (:func:`api.returnees.repository.referred`)."""
    stmt = (
        _open_to(caller)
        .where(col(Referral.returnee_id) == returnee_id)
        .order_by(col(Referral.created_at).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def open_with_returnee(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Referral | None:
    """The referral ``id`` if it is open, addressed to the caller's agency and about a returnee record."""
    stmt = _open_to(caller).where(col(Referral.id) == id, col(Referral.returnee_id).is_not(None))
    return (await session.exec(stmt)).first()


SORTS: dict[str, tuple[str, bool]] = {
    "due_at": ("due_at", False),
    "-due_at": ("due_at", True),
    "created_at": ("created_at", False),
    "-created_at": ("created_at", True),
    "updated_at": ("updated_at", False),
    "-updated_at": ("updated_at", True),
    "changes": ("change_pos", False),  # the commit order of changes (api.core.changes): the sync order
}
DEFAULT_SORT = "due_at"  # the most pressing first


@dataclass
class ReferralQuery:
    role: str | None = None  # sent | received
    status: list[ReferralStatus] = field(default_factory=list)
    reason: str | None = None
    urgency: str | None = None
    overdue: bool | None = None
    updated_since: datetime | None = None
    returnee_id: uuid.UUID | None = None
    sort: str = DEFAULT_SORT
    limit: int = DEFAULT_LIMIT
    after: Position | None = None  # (the sort column's value, id) of the last one of the previous page


async def readable_page(session: AsyncSession, caller: Caller, q: ReferralQuery) -> Slice[Referral]:
    """Up to ``q.limit`` readable referrals matching ``q`` in its sort order, after the
    position ``q.after``. ``q.sort`` is one of :data:`SORTS`."""
    name, desc = SORTS[q.sort]
    column = getattr(Referral, name)
    stmt = readable(caller)
    if q.role == "sent":
        stmt = stmt.where(col(Referral.from_agency) == caller.agency)
    elif q.role == "received":
        stmt = stmt.where(col(Referral.to_agency) == caller.agency)
    if q.status:
        stmt = stmt.where(col(Referral.status).in_([s.value for s in q.status]))
    if q.reason:
        stmt = stmt.where(col(Referral.reason) == q.reason)
    if q.urgency:
        stmt = stmt.where(col(Referral.urgency) == q.urgency)
    if q.returnee_id:
        stmt = stmt.where(col(Referral.returnee_id) == q.returnee_id)
    if q.overdue is not None:
        overdue = sa.and_(col(Referral.status).in_(OPEN), col(Referral.due_at) < clock.now())
        stmt = stmt.where(overdue if q.overdue else sa.not_(overdue))
    if q.updated_since is not None:
        stmt = stmt.where(col(Referral.updated_at) >= q.updated_since)
    keys = [col(column)] if name == "change_pos" else [col(column), col(Referral.id)]  # change_pos is unique
    return await pagination.read_page(session, stmt, keys, q.after, q.limit, descending=desc)


# --- history and moves -----------------------------------------------------------------------


_HISTORY = select(ReferralHistory).where(
    col(ReferralHistory.referral_id) == sa.bindparam("referral_id", type_=sa.Uuid())).order_by(col(ReferralHistory.seq))


async def history_of(session: AsyncSession, referral_id: uuid.UUID) -> list[ReferralHistory]:
    return list((await session.exec(_HISTORY, params={"referral_id": referral_id})).all())


async def history_shown(session: AsyncSession, referral_id: uuid.UUID) -> list[ReferralHistory]:
    """:func:`history_of` for a reply only: copies not in the session."""
    return await db.copies(session, _HISTORY, referral_id=referral_id)


async def next_seq(session: AsyncSession, referral_id: uuid.UUID) -> int:
    """The sequence number of the referral's next history entry."""
    last = (await session.exec(
        select(sa.func.coalesce(sa.func.max(ReferralHistory.seq), 0)).where(
            col(ReferralHistory.referral_id) == referral_id)
    )).one()
    return int(last) + 1


async def bump(session: AsyncSession, ref: Referral, **values: Any) -> None:
    """Write ``values`` and the next version if ``ref``'s version is still the stored one
    (:func:`api.core.preconditions.bump`: of two simultaneous moves one wins, the other is a
    412), then reload ``ref``."""
    await preconditions.bump(session, Referral, ref.id, ref.version, **values)
    changed(session, ref)
    await session.refresh(ref)


def changed(session: AsyncSession, ref: Referral) -> None:
    """Note that ``ref`` was created or changed: it gets its change position (the sync order)
    when the unit commits."""
    unit_of(session).changed(Referral.__table__, [ref.id])  # type: ignore[attr-defined]


# --- without a caller ------------------------------------------------------------------------


async def any_with_sender_ref_prefix(session: AsyncSession, prefix: str) -> bool:
    """Whether any referral's ``sender_ref`` starts with ``prefix`` (the demo loader's
    "already loaded" check; it shows nothing of a referral)."""
    stmt = sa.select(col(Referral.id)).where(col(Referral.sender_ref).startswith(prefix, autoescape=True)).limit(1)
    return (await session.execute(stmt)).first() is not None
