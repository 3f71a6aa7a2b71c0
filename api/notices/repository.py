"""Notice queries, in one place: who may see which notice, and the reads and writes built on it.

:func:`readable` is THE rule for seeing notices: agencies whose jurisdiction covers the
notice's district, the issuing agency, and the agencies that see the whole province of the
issuer (:func:`api.core.access.taken_in`: the province sees the notices to districts of other
provinces, and which of them wait for an agency there). Every query of notices for a caller starts from it;
``tests/test_readable.py`` fails when a query of ``notice`` is built anywhere else. The
returnees a notice lists are read through :mod:`api.returnees.repository`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core import access, pagination, preconditions
from api.core.access import in_jurisdiction, taken_in, visible_or_404
from api.core.context import Caller
from api.core.pagination import Position, Slice
from api.core.unit import unit_of
from models import Agency, Notice, NoticeFollowUp, NoticeReturnee, NoticeStatus

_TABLE: sa.Table = Notice.__table__  # type: ignore[attr-defined]


def readable(caller: Caller) -> SelectOfScalar[Notice]:
    """The notices ``caller`` may see. The one place that decides it."""
    return select(Notice).where(sa.or_(in_jurisdiction(caller, col(Notice.district)),
                                       col(Notice.issued_by) == caller.agency,
                                       taken_in(caller, col(Notice.issued_by))))


async def get_readable(session: AsyncSession, caller: Caller, notice_id: uuid.UUID) -> Notice:
    """The notice ``notice_id`` if ``caller`` may see it, else :class:`NotFound` (as if absent)."""
    return await visible_or_404(session, readable(caller).where(col(Notice.id) == notice_id), "notice")


async def shown(session: AsyncSession, caller: Caller, notice_id: uuid.UUID) -> Notice:
    """:func:`get_readable` for a reply only: a copy not in the session (to show, not to change)."""
    return await access.shown_by_id(session, caller, readable, notice_id, "notice")



async def readable_page(
    session: AsyncSession,
    caller: Caller,
    *,
    acknowledged: bool | None,
    district: str | None,
    after: Position | None,
    limit: int,
    changes: bool = False,
    status: NoticeStatus | None = None,
) -> Slice[Notice]:
    """Up to ``limit`` readable notices, newest first, after the position ``after`` (the
    ``(created_at, id)`` of the last one of the previous page); with ``changes``, in the order
    of their last change (``change_pos``), oldest first."""
    stmt = readable(caller)
    if acknowledged is not None:
        stmt = stmt.where(col(Notice.acknowledged_at).is_not(None) if acknowledged
                          else col(Notice.acknowledged_at).is_(None))
    if district is not None:
        stmt = stmt.where(col(Notice.district) == district)
    if status is not None:
        stmt = stmt.where(col(Notice.status) == status)
    if changes:
        return await pagination.read_page(session, stmt, [col(Notice.change_pos)], after, limit)
    keys = [col(Notice.created_at), col(Notice.id)]
    return await pagination.read_page(session, stmt, keys, after, limit, descending=True)


async def agency_covers(session: AsyncSession, district: str) -> bool:
    """Whether a registered agency's jurisdiction covers ``district`` (the district itself or
    its province): someone there to deliver a notice to."""
    province = district.split(".", 1)[0]
    stmt = sa.select(sa.literal(1)).select_from(Agency).where(col(Agency.jurisdiction).in_([district, province]))
    return (await session.execute(stmt.limit(1))).first() is not None


async def waiting_in(session: AsyncSession, jurisdiction: str) -> list[Notice]:
    """The notices waiting for an agency, addressed to districts ``jurisdiction`` covers or
    to the district that contains it (an agency of a kecamatan there is one of the region)."""
    province = jurisdiction.split(".", 1)[0]
    district = ".".join(jurisdiction.split(".")[:2])
    within = sa.or_(col(Notice.district) == jurisdiction, col(Notice.district) == district,
                    col(Notice.district).startswith(province + ".", autoescape=True)
                    if jurisdiction == province else sa.false())
    stmt = (select(Notice).where(col(Notice.status) == NoticeStatus.waiting_for_agency, within)
            .order_by(col(Notice.created_at), col(Notice.id)))
    return list((await session.exec(stmt)).all())


async def mark_delivered(session: AsyncSession, notice: Notice, now: datetime) -> None:
    """The notice is delivered at ``now``, a version on; ``notice`` follows."""
    version = (
        await session.execute(
            sa.update(_TABLE).where(_TABLE.c.id == notice.id)
            .values(version=_TABLE.c.version + 1, status=NoticeStatus.delivered.value, delivered_at=now,
                    updated_at=now).returning(_TABLE.c.version)
        )
    ).scalar_one()
    for attr, value in (("version", version), ("status", NoticeStatus.delivered), ("delivered_at", now),
                        ("updated_at", now)):
        set_committed_value(notice, attr, value)
    changed(session, notice)


async def link_returnees(session: AsyncSession, notice_id: uuid.UUID, returnee_ids: Sequence[uuid.UUID]) -> None:
    """List ``returnee_ids`` on the notice (one executemany)."""
    if returnee_ids:
        await session.execute(
            sa.insert(NoticeReturnee.__table__),  # type: ignore[attr-defined]
            [{"notice_id": notice_id, "returnee_id": rid} for rid in returnee_ids],
        )


async def follow_ups_of(session: AsyncSession, notice_id: uuid.UUID) -> list[NoticeFollowUp]:
    stmt = (
        select(NoticeFollowUp)
        .where(col(NoticeFollowUp.notice_id) == notice_id)
        .order_by(col(NoticeFollowUp.created_at), col(NoticeFollowUp.id))
    )
    return list((await session.exec(stmt)).all())


async def mark_acknowledged(session: AsyncSession, notice: Notice, agency: str, now: datetime) -> None:
    """Acknowledged by ``agency`` at ``now``, if ``notice``'s version is still the stored one
    (of two simultaneous acknowledgements one wins, the other is a 412); ``notice`` follows."""
    version = await preconditions.bump(
        session, Notice, notice.id, notice.version, acknowledged_at=now, acknowledged_by=agency, updated_at=now
    )
    changed(session, notice)
    for attr, value in (("version", version), ("acknowledged_at", now), ("acknowledged_by", agency),
                        ("updated_at", now)):
        set_committed_value(notice, attr, value)


async def next_version(session: AsyncSession, notice: Notice, now: datetime) -> None:
    """Move the notice's version (its ETag) on, unconditionally: its representation changed
    (a follow-up was added); ``notice`` follows."""
    version = (
        await session.execute(
            sa.update(_TABLE).where(_TABLE.c.id == notice.id)
            .values(version=_TABLE.c.version + 1, updated_at=now).returning(_TABLE.c.version)
        )
    ).scalar_one()
    set_committed_value(notice, "version", version)
    set_committed_value(notice, "updated_at", now)
    changed(session, notice)


def changed(session: AsyncSession, notice: Notice) -> None:
    """Note that ``notice`` was created or changed: it gets its change position (the sync
    order) when the unit commits."""
    unit_of(session).changed(_TABLE, [notice.id])
