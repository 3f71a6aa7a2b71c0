"""Deportation notices: issuing (by hand or for a returnee batch), reading, acknowledging,
recording follow-up.

Who sees a notice: agencies whose jurisdiction covers its district, and the issuing agency
(:func:`api.notices.repository.readable`). Anyone else gets a 404.

Who issues one, to whom: a notice is a write into the district's inbox, so its district must lie
where the issuer may write (:func:`api.core.access.may_write`: its jurisdiction, or its whole
province for BP3MI, the border intake); elsewhere it is a 403 ``outside-jurisdiction`` naming
``district``. Which returnees a notice may list: those its issuer may read
(:func:`api.returnees.repository.readable`), of that district.

Notices to people of other provinces: the border intake (BP3MI) also tells the home district of
a deportee of another province (:func:`api.core.access.may_take_in`). When no agency of that
region is registered yet, the notice waits (``status: waiting_for_agency``): the issuer and the
agencies that see the issuer's whole province read it (the province sees what waits,
:func:`api.notices.repository.readable`); when an agency whose jurisdiction covers the district
is registered, :func:`deliver_waiting` delivers it (``notice.delivered``).

Who answers it: only the addressed district, that is an agency whose jurisdiction *is* the
notice's district (:func:`is_addressee`), acknowledges it and records follow-ups. The province
sees the notice but does not answer for the district, nor does the issuer, nor a sub-district
agency (which does not see the district's notices); they get a 403 ``not-addressee``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import access, audit, clock, outbox, preconditions
from api.core.context import Caller
from api.core.errors import Conflict, Problem, ValidationFailed
from api.core.pagination import DEFAULT_LIMIT, Position, Slice
from api.notices import repository
from api.notices.schemas import FollowUpCreate, NoticeCreate
from api.returnees import repository as returnees
from models import Agency, FollowUpAction, Notice, NoticeFollowUp, NoticeStatus
from models.regions import province_of


class NotAddressee(Problem):
    status, slug, title = 403, "not-addressee", "Only the addressed district may do this"


def is_addressee(caller: Caller, notice: Notice) -> bool:
    """The caller's agency is the district the notice is addressed to (its jurisdiction is
    exactly that district), and not the notice's issuer."""
    return caller.jurisdiction == notice.district and caller.agency != notice.issued_by


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
    status: NoticeStatus = NoticeStatus.delivered,
    intake: str | None = None,
) -> Notice:
    """Write a notice (no checks: callers have validated the returnees), its returnee links,
    its ``notice.created`` event and its audit entry."""
    now = clock.now()
    notice = Notice(
        status=status,
        delivered_at=now if status == NoticeStatus.delivered else None,
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
    repository.changed(session, notice)
    await repository.link_returnees(session, notice.id, returnee_ids)
    outbox.emit_taken_in(
        session,
        "notice.created",
        {"id": str(notice.id), "district": district, "issued_by": issuer, "returnee_count": len(returnee_ids),
         "status": str(status)},
        region=district,
        intake=intake,
        audience=[issuer],
    )
    audit.record(
        session,
        "notice.create",
        resource_type="notice",
        resource_id=notice.id,
        subjects=[("returnee", rid) for rid in returnee_ids],
        district=district,
        status=str(status),
    )
    return notice


async def status_for(session: AsyncSession, issuer: Caller, district: str) -> NoticeStatus:
    """``waiting_for_agency`` for a district outside where the issuer may write (another
    province's, through the border intake) that no registered agency covers; else delivered."""
    if access.may_write(issuer, district) or await repository.agency_covers(session, district):
        return NoticeStatus.delivered
    return NoticeStatus.waiting_for_agency


async def create_notice(session: AsyncSession, caller: Caller, data: NoticeCreate) -> Notice:
    """A notice to one district. The district must lie where the caller may write (403
    ``outside-jurisdiction`` otherwise, :func:`api.core.access.check_write`); every returnee
    must exist, be readable by the caller (:func:`api.returnees.repository.readable`) and come
    from that district; otherwise 422 naming each returnee at fault."""
    access.check_take_in(caller, data.district, "district")
    origin = await returnees.readable_origins(session, caller, data.returnee_ids)
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
        status=await status_for(session, caller, data.district),
        intake=province_of(caller.jurisdiction),
    )


async def raise_for_batch(
    session: AsyncSession, caller: Caller, touched: Mapping[str, Iterable[uuid.UUID]], *, source: str = "batch"
) -> list[Notice]:
    """One notice per district, issued by the caller, for the returnees a batch created or
    updated (``touched``: district code -> returnee ids; the caller pushed them, so it may read
    them). Arrival date and entry point are taken from the returnees (latest return date, most
    frequent entry point). A district the caller may not write for
    (:func:`api.core.access.may_write`) gets no notice. The demo loader uses it too
    (``source="demo"``)."""
    return await raise_for(session, caller, touched, source=source)


async def raise_for(
    session: AsyncSession,
    issuer: Caller,
    touched: Mapping[str, Iterable[uuid.UUID]],
    *,
    source: str = "batch",
    summary: str | None = None,
) -> list[Notice]:
    """:func:`raise_for_batch` for any ``touched`` mapping (ids repeated or missing are fine).
    A district of another province (through the border intake) gets a notice that waits for an
    agency of its region when none is registered (:func:`status_for`). ``summary``: the
    notices' text instead of the batch's."""
    wanted = {d: list(dict.fromkeys(ids)) for d, ids in touched.items()}
    all_ids = [rid for ids in wanted.values() for rid in ids]
    if not all_ids:
        return []
    info = await returnees.readable_arrivals(session, issuer, all_ids)
    notices = []
    for district in sorted(wanted):
        if not access.may_take_in(issuer, district):
            continue
        ids = [rid for rid in wanted[district] if rid in info and info[rid][0] == district]
        if not ids:
            continue
        entry_points = Counter(info[rid][2] for rid in ids if info[rid][2])
        n = len(ids)
        notices.append(
            await issue(
                session,
                issuer=issuer.agency,
                district=district,
                returnee_ids=ids,
                summary=summary or f"{n} returnee{'s' if n != 1 else ''} from {source} push by {issuer.agency}",
                arrival_date=max(info[rid][1] for rid in ids),
                entry_point=entry_points.most_common(1)[0][0] if entry_points else None,
                status=await status_for(session, issuer, district),
                intake=province_of(issuer.jurisdiction),
            )
        )
    return notices


# --- reading ----------------------------------------------------------------------------------


async def list_notices(
    session: AsyncSession,
    caller: Caller,
    *,
    acknowledged: bool | None = None,
    district: str | None = None,
    status: NoticeStatus | None = None,
    after: Position | None = None,
    limit: int = DEFAULT_LIMIT,
    changes: bool = False,
) -> Slice[Notice]:
    """Notices the caller may see, newest first; ``after`` is the (created_at, id) of the last
    one of the previous page. With ``changes``: in the order of their last change, and there is
    always a position to continue from (where the next sync starts)."""
    page = await repository.readable_page(session, caller, acknowledged=acknowledged, district=district,
                                          status=status, after=after, limit=limit, changes=changes)
    if changes and page.next is None:
        page = Slice(page.items, (page.items[-1].change_pos,) if page.items else (after or (0,)))
    notices = page.items
    audit.record(
        session,
        "notice.list",
        resource_type="notice",
        subjects=[("notice", n.id) for n in notices],
        filters={k: v for k, v in {"acknowledged": acknowledged, "district": district,
                                   "status": None if status is None else str(status)}.items() if v is not None}
        or None,
    )
    return page


@dataclass
class NoticeDetail:
    notice: Notice
    returnees: list[dict[str, Any]]
    follow_ups: list[NoticeFollowUp]


async def get_notice(session: AsyncSession, caller: Caller, notice_id: uuid.UUID) -> NoticeDetail:
    """One notice with its returnees (no identity numbers) and follow-ups."""
    notice = await repository.shown(session, caller, notice_id)
    return await describe(session, notice, audit_action="notice.read")


async def describe(session: AsyncSession, notice: Notice, *, audit_action: str | None = None) -> NoticeDetail:
    """The notice with its returnees and follow-ups; audited as ``audit_action`` when given.
    For a notice the caller may see: its returnees are shown because the notice is
    (:func:`api.returnees.repository.listed_on`)."""
    returnees_listed = [
        {"id": r.id, "name": r.name, "sex": r.sex, "origin_subdistrict": r.origin_subdistrict,
         "return_type": r.return_type, "return_date": r.return_date, "trafficking_status": r.trafficking_status}
        for r in await returnees.listed_on(session, notice.id)
    ]
    follow_ups = await repository.follow_ups_of(session, notice.id)
    if audit_action:
        audit.record(
            session,
            audit_action,
            resource_type="notice",
            resource_id=notice.id,
            subjects=[("returnee", r["id"]) for r in returnees_listed],
        )
    return NoticeDetail(notice, returnees_listed, follow_ups)


# --- delivering what waited ------------------------------------------------------------------


async def deliver_waiting(session: AsyncSession, agency: str, jurisdiction: str) -> list[Notice]:
    """An agency was registered: the notices waiting for an agency of its region (districts its
    jurisdiction covers) are delivered, each with its ``notice.delivered`` event and audit entry."""
    delivered = []
    now = clock.now()
    for notice in await repository.waiting_in(session, jurisdiction):
        await repository.mark_delivered(session, notice, now)
        issuer = await session.get(Agency, notice.issued_by)
        outbox.emit_taken_in(
            session,
            "notice.delivered",
            {"id": str(notice.id), "district": notice.district, "issued_by": notice.issued_by,
             "delivered_at": now.isoformat().replace("+00:00", "Z"), "registered_agency": agency},
            region=notice.district,
            intake=province_of(issuer.jurisdiction) if issuer is not None else None,
            audience=[notice.issued_by],
        )
        audit.record(session, "notice.deliver", resource_type="notice", resource_id=notice.id,
                     district=notice.district, registered_agency=agency)
        delivered.append(notice)
    return delivered


# --- the district's side ----------------------------------------------------------------------


async def acknowledge(
    session: AsyncSession, caller: Caller, notice_id: uuid.UUID, if_match: str | None
) -> Notice:
    """The addressed district acknowledges the notice (``If-Match`` required; 409 when it is
    already acknowledged). Of two simultaneous acknowledgements exactly one wins."""
    notice = await repository.get_readable(session, caller, notice_id)
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
    await repository.mark_acknowledged(session, notice, agency, now)
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
    notice = await repository.get_readable(session, caller, notice_id)
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
    await repository.next_version(session, notice, now)
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
