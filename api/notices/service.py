"""Deportation notices: issuing (by hand or for a returnee batch), reading, acknowledging,
recording follow-up.

Who sees a notice: agencies whose jurisdiction covers its district, and the issuing agency.
Anyone else gets a 404. Only the addressed district (its jurisdiction covers the district, and
it is not the issuer) acknowledges a notice and records follow-ups.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock, preconditions
from api.core import audit
from api.core.access import in_jurisdiction, visible_or_404
from api.core.context import Caller
from api.core.errors import Conflict, Problem, ValidationFailed
from api.core import outbox
from api.notices.schemas import FollowUpCreate, NoticeCreate
from models import FollowUpAction, Notice, NoticeFollowUp, NoticeReturnee, Returnee


class NotAddressee(Problem):
    status, slug, title = 403, "not-addressee", "Only the addressed district may do this"


# --- who sees what ----------------------------------------------------------------------------


def visible(caller: Caller) -> sa.ColumnElement[bool]:
    """SQL condition: the caller may see the notice."""
    return sa.or_(in_jurisdiction(caller, col(Notice.district)), col(Notice.issued_by) == caller.agency)


def returnee_visible(caller: Caller) -> sa.ColumnElement[bool]:
    """SQL condition: the caller may list this returnee on a notice."""
    return sa.or_(in_jurisdiction(caller, col(Returnee.origin_district)), col(Returnee.source_agency) == caller.agency)


def is_addressee(caller: Caller, notice: Notice) -> bool:
    return caller.covers(notice.district) and caller.agency != notice.issued_by


async def get_visible(session: AsyncSession, caller: Caller, notice_id: uuid.UUID) -> Notice:
    return await visible_or_404(
        session, select(Notice).where(Notice.id == notice_id, visible(caller)), "notice"
    )


# --- issuing ----------------------------------------------------------------------------------


async def issue(
    session: AsyncSession,
    *,
    issuer: str,
    district: str,
    returnee_ids: Sequence[uuid.UUID],
    summary: str | None = None,
    arrival_date: date | None = None,
    entry_point: str | None = None,
) -> Notice:
    """Write a notice (no checks: callers have validated the returnees), its returnee links,
    its ``notice.created`` event and its audit entry."""
    now = clock.now()
    notice = Notice(
        district=district,
        issued_by=issuer,
        summary=summary,
        arrival_date=arrival_date,
        entry_point=entry_point,
        returnee_count=len(returnee_ids),
        created_at=now,
        updated_at=now,
    )
    session.add(notice)
    await session.flush()
    if returnee_ids:
        await session.execute(
            sa.insert(NoticeReturnee.__table__),
            [{"notice_id": notice.id, "returnee_id": rid} for rid in returnee_ids],
        )
    outbox.emit(
        session,
        "notice.created",
        {"id": str(notice.id), "district": district, "issued_by": issuer, "returnee_count": len(returnee_ids)},
        region=district,
        audience=[issuer],
    )
    audit.record(
        session,
        "notice.create",
        resource_type="notice",
        resource_id=notice.id,
        subjects=[("returnee", rid) for rid in returnee_ids],
        district=district,
    )
    return notice


async def create_notice(session: AsyncSession, caller: Caller, data: NoticeCreate) -> Notice:
    """A notice to one district. Every returnee must exist, be visible to the caller and come
    from that district; otherwise 422 naming each returnee at fault."""
    rows = (
        await session.execute(
            sa.select(Returnee.id, Returnee.origin_district).where(
                col(Returnee.id).in_(data.returnee_ids), returnee_visible(caller)
            )
        )
    ).all()
    origin = {r[0]: r[1] for r in rows}
    errors = []
    for i, rid in enumerate(data.returnee_ids):
        field = f"returnee_ids.{i}"
        if rid not in origin:
            errors.append({"field": field, "message": f"no such returnee {rid}"})
        elif origin[rid] != data.district:
            errors.append(
                {"field": field, "message": f"returnee {rid} comes from {origin[rid]}, not {data.district}"}
            )
    if errors:
        raise ValidationFailed("Some returnees cannot be listed on this notice", errors=errors)
    return await issue(
        session,
        issuer=caller.agency,
        district=data.district,
        returnee_ids=data.returnee_ids,
        summary=data.summary,
        arrival_date=data.arrival_date,
        entry_point=data.entry_point,
    )


async def raise_for_batch(
    session: AsyncSession, caller: Caller, touched: dict[str, list[uuid.UUID]]
) -> list[Notice]:
    """One notice per district for the returnees a batch created or updated
    (``touched``: district code -> returnee ids). Arrival date and entry point are taken from
    the returnees (latest return date, most frequent entry point)."""
    return await raise_for(session, caller.agency, touched, source="batch")


async def raise_for(
    session: AsyncSession, issuer: str, touched: dict[str, Iterable[uuid.UUID]], *, source: str = "batch"
) -> list[Notice]:
    """:func:`raise_for_batch` for an issuer given by agency code (the demo loader uses it)."""
    wanted = {d: list(dict.fromkeys(ids)) for d, ids in touched.items()}
    all_ids = [rid for ids in wanted.values() for rid in ids]
    if not all_ids:
        return []
    info: dict[uuid.UUID, tuple[str, date, str | None]] = {}
    for chunk in _chunks(all_ids, 1000):
        rows = await session.execute(
            sa.select(Returnee.id, Returnee.origin_district, Returnee.return_date, Returnee.entry_point).where(
                col(Returnee.id).in_(chunk)
            )
        )
        info.update({r[0]: (r[1], r[2], r[3]) for r in rows})
    notices = []
    for district in sorted(wanted):
        ids = [rid for rid in wanted[district] if rid in info and info[rid][0] == district]
        if not ids:
            continue
        entry_points = Counter(info[rid][2] for rid in ids if info[rid][2])
        n = len(ids)
        notices.append(
            await issue(
                session,
                issuer=issuer,
                district=district,
                returnee_ids=ids,
                summary=f"{n} returnee{'s' if n != 1 else ''} from {source} push by {issuer}",
                arrival_date=max(info[rid][1] for rid in ids),
                entry_point=entry_points.most_common(1)[0][0] if entry_points else None,
            )
        )
    return notices


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- reading ----------------------------------------------------------------------------------


async def list_notices(
    session: AsyncSession,
    caller: Caller,
    *,
    acknowledged: bool | None = None,
    district: str | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[Notice]:
    """Notices the caller may see, newest first; ``after`` is the (created_at, id) of the last
    one of the previous page."""
    stmt = select(Notice).where(visible(caller))
    if acknowledged is not None:
        stmt = stmt.where(col(Notice.acknowledged_at).is_not(None) if acknowledged
                          else col(Notice.acknowledged_at).is_(None))
    if district is not None:
        stmt = stmt.where(col(Notice.district) == district)
    if after is not None:
        t, last_id = after
        stmt = stmt.where(
            sa.or_(col(Notice.created_at) < t, sa.and_(col(Notice.created_at) == t, col(Notice.id) < last_id))
        )
    stmt = stmt.order_by(col(Notice.created_at).desc(), col(Notice.id).desc()).limit(limit)
    notices = list((await session.exec(stmt)).all())
    audit.record(
        session,
        "notice.list",
        resource_type="notice",
        subjects=[("notice", n.id) for n in notices],
        filters={k: v for k, v in {"acknowledged": acknowledged, "district": district}.items() if v is not None}
        or None,
    )
    return notices


@dataclass
class NoticeDetail:
    notice: Notice
    returnees: list[dict[str, Any]]
    follow_ups: list[NoticeFollowUp]


async def get_notice(session: AsyncSession, caller: Caller, notice_id: uuid.UUID) -> NoticeDetail:
    """One notice with its returnees (no identity numbers) and follow-ups."""
    notice = await get_visible(session, caller, notice_id)
    return await describe(session, notice, audit_action="notice.read")


async def describe(session: AsyncSession, notice: Notice, *, audit_action: str | None = None) -> NoticeDetail:
    """The notice with its returnees and follow-ups; audited as ``audit_action`` when given."""
    rows = (
        await session.execute(
            sa.select(
                Returnee.id,
                Returnee.full_name,
                Returnee.sex,
                Returnee.origin_subdistrict,
                Returnee.return_type,
                Returnee.return_date,
                Returnee.trafficking_status,
            )
            .join(NoticeReturnee, col(NoticeReturnee.returnee_id) == col(Returnee.id))
            .where(col(NoticeReturnee.notice_id) == notice.id)
            .order_by(col(Returnee.return_date), col(Returnee.full_name), col(Returnee.id))
        )
    ).all()
    returnees = [
        {
            "id": r[0],
            "name": r[1],
            "sex": r[2],
            "origin_subdistrict": r[3],
            "return_type": r[4],
            "return_date": r[5],
            "trafficking_status": r[6],
        }
        for r in rows
    ]
    follow_ups = list(
        (
            await session.exec(
                select(NoticeFollowUp)
                .where(NoticeFollowUp.notice_id == notice.id)
                .order_by(col(NoticeFollowUp.created_at), col(NoticeFollowUp.id))
            )
        ).all()
    )
    if audit_action:
        audit.record(
            session,
            audit_action,
            resource_type="notice",
            resource_id=notice.id,
            subjects=[("returnee", r["id"]) for r in returnees],
        )
    return NoticeDetail(notice, returnees, follow_ups)


# --- the district's side ----------------------------------------------------------------------


async def acknowledge(
    session: AsyncSession, caller: Caller, notice_id: uuid.UUID, if_match: str | None
) -> Notice:
    """The addressed district acknowledges the notice (``If-Match`` required; 409 when it is
    already acknowledged). Of two simultaneous acknowledgements exactly one wins."""
    notice = await get_visible(session, caller, notice_id)
    if not is_addressee(caller, notice):
        raise NotAddressee(f"Only the district {notice.district} may acknowledge this notice")
    if if_match is None or not if_match.strip():
        preconditions.check_if_match(if_match, notice.version)  # 428
    if notice.acknowledged_at is not None:
        raise Conflict(
            f"The notice was already acknowledged by {notice.acknowledged_by}",
            acknowledged_at=notice.acknowledged_at.isoformat().replace("+00:00", "Z"),
            acknowledged_by=notice.acknowledged_by,
        )
    preconditions.check_if_match(if_match, notice.version)
    await _mark_acknowledged(session, notice, caller.agency)
    return notice


async def _mark_acknowledged(session: AsyncSession, notice: Notice, agency: str, **detail: Any) -> None:
    now = clock.now()
    version = await preconditions.bump(
        session, Notice, notice.id, notice.version, acknowledged_at=now, acknowledged_by=agency, updated_at=now
    )
    for attr, value in (("version", version), ("acknowledged_at", now), ("acknowledged_by", agency),
                        ("updated_at", now)):
        set_committed_value(notice, attr, value)
    outbox.emit(
        session,
        "notice.acknowledged",
        {"id": str(notice.id), "district": notice.district, "acknowledged_by": agency,
         "acknowledged_at": now.isoformat().replace("+00:00", "Z")},
        region=notice.district,
        audience=[notice.issued_by],
    )
    audit.record(session, "notice.acknowledge", resource_type="notice", resource_id=notice.id, **detail)


async def record_follow_up(
    session: AsyncSession, caller: Caller, notice_id: uuid.UUID, data: FollowUpCreate
) -> NoticeFollowUp:
    """The addressed district records what it did about the notice. The notice's version (its
    ETag) moves on, since its representation lists the follow-ups."""
    notice = await get_visible(session, caller, notice_id)
    if not is_addressee(caller, notice):
        raise NotAddressee(f"Only the district {notice.district} may record follow-up on this notice")
    return await _add_follow_up(session, notice, caller.agency, data)


async def _add_follow_up(
    session: AsyncSession, notice: Notice, agency: str, data: FollowUpCreate, **detail: Any
) -> NoticeFollowUp:
    now = clock.now()
    follow_up = NoticeFollowUp(
        notice_id=notice.id,
        action=FollowUpAction(data.action),
        note=data.note,
        occurred_on=data.occurred_on,
        recorded_by=agency,
        created_at=now,
    )
    session.add(follow_up)
    table = Notice.__table__
    version = (
        await session.execute(
            sa.update(table).where(table.c.id == notice.id)
            .values(version=table.c.version + 1, updated_at=now).returning(table.c.version)
        )
    ).scalar_one()
    set_committed_value(notice, "version", version)
    set_committed_value(notice, "updated_at", now)
    await session.flush()
    outbox.emit(
        session,
        "notice.follow_up_recorded",
        {"id": str(notice.id), "follow_up_id": str(follow_up.id), "district": notice.district,
         "action": str(follow_up.action), "recorded_by": agency},
        region=notice.district,
        audience=[notice.issued_by],
    )
    audit.record(session, "notice.follow_up", resource_type="notice", resource_id=notice.id,
                 follow_up_id=str(follow_up.id), follow_up_action=str(follow_up.action), **detail)
    return follow_up


# --- without a request (the demo loader) -------------------------------------------------------


async def acknowledge_as(session: AsyncSession, agency: str, notice: Notice) -> None:
    """Acknowledge on behalf of ``agency`` (no-op when already acknowledged)."""
    if notice.acknowledged_at is None:
        await _mark_acknowledged(session, notice, agency, on_behalf_of=agency)


async def follow_up_as(session: AsyncSession, agency: str, notice: Notice, data: FollowUpCreate) -> NoticeFollowUp:
    """Record a follow-up on behalf of ``agency``."""
    return await _add_follow_up(session, notice, agency, data, on_behalf_of=agency)
