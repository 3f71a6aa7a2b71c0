"""Referrals: creating, reading, listing and moving them. Queries live here, moves are decided by
:mod:`api.referrals.workflow`; nothing here commits (the request's session does).

Who sees a referral
-------------------
* the sending agency (``from_agency``) and the receiving agency (``to_agency``);
* an oversight agency (kind ``task_force``) when any of the referral's three regions lies in
  its jurisdiction: ``from_region`` (the sender's jurisdiction), ``to_region`` (the receiver's
  jurisdiction) and ``subject_region`` (the returnee's origin sub-district or district, or the
  inline subject's district). The regions are copied at creation;
* nobody else: to them the referral does not exist (404).

A referral's events are filed under :attr:`models.Referral.region` (the subject's region, else
the receiver's jurisdiction) with both agencies as audience.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock, crypto
from api.core import audit
from api.core.unit import context_of, unit_of
from api.core.context import Caller
from api.core import access
from api.core.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from api.core import outbox
from api.core.pagination import decode_cursor, encode_cursor
from api.core.preconditions import bump, check_if_match
from api.referrals import workflow
from api.referrals.schemas import ADULT_AGE, ReferralCreate, age_on
from api.referrals.workflow import Action, Party
from models import (
    OPEN_STATUSES,
    Agency,
    Referral,
    ReferralHistory,
    ReferralStatus,
    Returnee,
)

OPEN = sorted(s.value for s in OPEN_STATUSES)


# --- visibility --------------------------------------------------------------------------


def visible_to(caller: Caller) -> sa.ColumnElement[bool]:
    """SQL condition: the caller may see the referral (see the module docstring)."""
    party = sa.or_(col(Referral.from_agency) == caller.agency, col(Referral.to_agency) == caller.agency)
    if not caller.is_oversight:
        return party
    return sa.or_(
        party,
        access.in_jurisdiction(caller, col(Referral.from_region)),
        access.in_jurisdiction(caller, col(Referral.to_region)),
        access.in_jurisdiction(caller, col(Referral.subject_region)),
    )


def party_of(caller: Caller, referral: Referral) -> Party | None:
    if referral.from_agency == caller.agency:
        return Party.sender
    if referral.to_agency == caller.agency:
        return Party.receiver
    return None


async def _visible(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Referral:
    stmt = select(Referral).where(col(Referral.id) == id, visible_to(caller))
    return await access.visible_or_404(session, stmt, "referral")


def _subjects(r: Referral) -> list[tuple[str, Any]]:
    return [("returnee", r.returnee_id)] if r.returnee_id else []


async def history_of(session: AsyncSession, referral_id: uuid.UUID) -> list[ReferralHistory]:
    stmt = select(ReferralHistory).where(col(ReferralHistory.referral_id) == referral_id).order_by(
        col(ReferralHistory.seq)
    )
    return list((await session.exec(stmt)).all())


def _history(r: Referral, seq: int, caller: Caller, frm: str | None, action: str, at: datetime,
             note: str | None) -> ReferralHistory:
    return ReferralHistory(referral_id=r.id, seq=seq, from_status=frm, to_status=r.status, action=action,
                           by_agency=caller.agency, by_client=caller.client_id, at=at, note=note)


# --- creating ----------------------------------------------------------------------------


def _invalid(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed("See 'errors' for the fields at fault", errors=[{"field": field_name, "message": message}])


async def create_referral(
    session: AsyncSession, caller: Caller, data: ReferralCreate
) -> tuple[Referral, list[ReferralHistory]]:
    """Refer a case from the caller's agency to ``data.to_agency``. 422 for an unknown or own
    receiving agency, or a returnee the caller may not see; 409 for a reused ``sender_ref``."""
    to = await session.get(Agency, data.to_agency)
    if to is None:
        raise _invalid("to_agency", f"no registered agency {data.to_agency}")
    if to.code == caller.agency:
        raise _invalid("to_agency", "an agency cannot refer a case to itself")

    now = clock.now()
    ref = Referral(
        from_agency=caller.agency, to_agency=to.code, sender_ref=data.sender_ref,
        status=ReferralStatus.requested, from_region=caller.jurisdiction, to_region=to.jurisdiction,
        reason=data.reason, legal_basis=data.legal_basis, urgency=data.urgency, note=data.note,
        processing_basis=data.processing_basis, due_at=workflow.due_at(data.urgency, now),
        created_at=now, updated_at=now,
    )
    if data.returnee_id is not None:
        returnee = (await session.exec(
            select(Returnee).where(
                col(Returnee.id) == data.returnee_id,
                sa.or_(col(Returnee.source_agency) == caller.agency,
                       access.in_jurisdiction(caller, col(Returnee.origin_district))),
            )
        )).first()
        if returnee is None:
            raise _invalid("returnee_id", "no such returnee among those your agency may see")
        ref.returnee_id = returnee.id
        ref.subject_region = returnee.origin_subdistrict or returnee.origin_district
        ref.subject_is_child = returnee.birth_date is not None and age_on(returnee.birth_date, now.date()) < ADULT_AGE
    else:
        s = data.subject
        assert s is not None  # the schema requires returnee_id or subject
        ref.subject_name, ref.subject_sex, ref.subject_birth_date = s.full_name, s.sex, s.birth_date
        ref.subject_is_child = s.child_on(now.date())
        ref.subject_region = s.district
        if s.phone:
            ref.subject_phone_enc = crypto.encrypt(s.phone, context="referral.subject_phone",
                                                  key=unit_of(session).settings.data_key_bytes)

    consent = data.consent
    if consent is not None and consent.given:
        if ref.subject_is_child and not consent.guardian:
            raise _invalid("consent.guardian", "the subject is a child: consent needs the guardian who gave it")
        ref.consent_given = True
        ref.consent_given_by, ref.consent_method, ref.consent_guardian = (
            consent.given_by, consent.method, consent.guardian)
        ref.consent_given_at = consent.given_at.astimezone(UTC) if consent.given_at else None

    if data.sender_ref is not None:
        taken = (await session.exec(select(Referral.id).where(
            col(Referral.from_agency) == caller.agency, col(Referral.sender_ref) == data.sender_ref))).first()
        if taken is not None:
            raise Conflict(f"Your agency already has a referral with sender_ref {data.sender_ref}",
                           referral_id=str(taken))
    session.add(ref)
    first = _history(ref, 1, caller, None, "request", now, data.note)
    session.add(first)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"Your agency already has a referral with sender_ref {data.sender_ref}") from None

    audit.record(session, "referral.create", resource_type="referral", resource_id=ref.id,
                 subjects=_subjects(ref), to_agency=ref.to_agency, reason=ref.reason,
                 consent=ref.consent_given, processing_basis=ref.processing_basis)
    outbox.emit(
        session, "referral.requested",
        {"id": str(ref.id), "from_agency": ref.from_agency, "to_agency": ref.to_agency, "reason": ref.reason,
         "urgency": ref.urgency, "due_at": ref.due_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "status": ref.status},
        region=ref.region, audience=[ref.from_agency, ref.to_agency],
    )
    return ref, [first]


# --- reading -----------------------------------------------------------------------------


async def get_referral(
    session: AsyncSession, caller: Caller, id: uuid.UUID
) -> tuple[Referral, list[ReferralHistory]]:
    """One referral the caller may see, with its history (404 otherwise)."""
    ref = await _visible(session, caller, id)
    audit.record(session, "referral.read", resource_type="referral", resource_id=ref.id, subjects=_subjects(ref))
    return ref, await history_of(session, ref.id)


SORTS: dict[str, tuple[str, bool]] = {
    "due_at": ("due_at", False),
    "-due_at": ("due_at", True),
    "created_at": ("created_at", False),
    "-created_at": ("created_at", True),
    "updated_at": ("updated_at", False),
    "-updated_at": ("updated_at", True),
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
    limit: int = 50
    cursor: str | None = None


async def list_referrals(
    session: AsyncSession, caller: Caller, q: ReferralQuery
) -> tuple[list[Referral], str | None]:
    """Referrals the caller may see, filtered and keyset-paginated; returns ``(items, next_cursor)``."""
    if q.sort not in SORTS:
        raise _invalid("sort", f"sort by one of {', '.join(SORTS)}")
    name, desc = SORTS[q.sort]
    column = getattr(Referral, name)
    stmt = select(Referral).where(visible_to(caller))
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
        since = q.updated_since if q.updated_since.tzinfo else q.updated_since.replace(tzinfo=UTC)
        stmt = stmt.where(col(Referral.updated_at) >= since)
    if q.cursor:
        c = decode_cursor(q.cursor)
        if c.get("s") != q.sort or "v" not in c or "id" not in c:
            raise BadRequest("The cursor does not belong to this sort order; start again without it")
        try:
            value, last_id = datetime.fromisoformat(c["v"]), uuid.UUID(c["id"])
        except (TypeError, ValueError):
            raise BadRequest("The cursor is not valid; use next_cursor from a previous reply") from None
        if desc:
            stmt = stmt.where(sa.or_(column < value, sa.and_(column == value, col(Referral.id) < last_id)))
        else:
            stmt = stmt.where(sa.or_(column > value, sa.and_(column == value, col(Referral.id) > last_id)))
    order = (column.desc(), col(Referral.id).desc()) if desc else (column.asc(), col(Referral.id).asc())
    rows = list((await session.exec(stmt.order_by(*order).limit(q.limit + 1))).all())
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor({"s": q.sort, "v": getattr(last, name).isoformat(), "id": str(last.id)})
    subjects: list[tuple[str, Any]] = []
    for r in rows:
        subjects.append(("referral", r.id))
        subjects.extend(_subjects(r))
    audit.record(session, "referral.list", resource_type="referral", subjects=subjects, count=len(rows),
                 role=q.role)
    return rows, next_cursor


# --- moving ------------------------------------------------------------------------------


async def transition(
    session: AsyncSession,
    caller: Caller,
    id: uuid.UUID,
    action: Action,
    note: str | None,
    if_match: str | None,
) -> tuple[Referral, list[ReferralHistory]]:
    """Make ``action`` on a referral the caller may see.

    404 when it may not see it; 428 / 412 for a missing / stale ``If-Match``; 409 when the
    move is not the caller's to make or the state machine forbids it; 403 when the caller lacks
    the scope of its part (receiver: ``referrals:respond``, sender: ``referrals:write``). Of two
    simultaneous moves with the same ETag exactly one wins: the version bump is conditional.
    """
    ref = await _visible(session, caller, id)
    check_if_match(if_match, ref.version)
    workflow.check_party(action, party_of(caller, ref))
    scope = workflow.required_scope(action)
    if not caller.has(scope):
        raise Forbidden(scope)
    context_of(session).scope_used = scope
    before = ReferralStatus(ref.status)
    after = workflow.next_status(before, action)

    now = clock.now()
    values: dict[str, Any] = {"status": after.value, "updated_at": now}
    if not workflow.is_open(after):
        values["closed_at"] = now
    await bump(session, Referral, ref.id, ref.version, **values)
    await session.refresh(ref)
    seq = (await session.exec(
        select(sa.func.coalesce(sa.func.max(ReferralHistory.seq), 0)).where(col(ReferralHistory.referral_id) == ref.id)
    )).one()
    session.add(_history(ref, int(seq) + 1, caller, before.value, action.value, now, note))
    await session.flush()

    audit.record(session, f"referral.{action.value}", resource_type="referral", resource_id=ref.id,
                 subjects=_subjects(ref), **{"from": before.value, "to": after.value, "with_note": bool(note)})
    # (the note itself stays in the referral's history: the audit chain cannot forget it)
    outbox.emit(
        session, "referral.status_changed",
        {"id": str(ref.id), "from": before.value, "to": after.value, "action": action.value,
         "from_agency": ref.from_agency, "to_agency": ref.to_agency},
        region=ref.region, audience=[ref.from_agency, ref.to_agency],
    )
    return ref, await history_of(session, ref.id)


# --- the referred returnee ---------------------------------------------------------------


async def open_referral_for(session: AsyncSession, agency_code: str, returnee_id: uuid.UUID) -> Referral | None:
    """An open referral (requested, received, accepted, in-progress, on-hold) addressed to
    ``agency_code`` about ``returnee_id``, if there is one: while it is open the receiver may
    read that returnee even outside its jurisdiction, with the referral as the purpose."""
    stmt = (
        select(Referral)
        .where(
            col(Referral.to_agency) == agency_code,
            col(Referral.returnee_id) == returnee_id,
            col(Referral.status).in_(OPEN),
        )
        .order_by(col(Referral.created_at).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def referred_returnee(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Returnee:
    """The returnee of an open referral addressed to the caller's agency; 404 for anyone else,
    for a closed referral, and for a referral about an inline subject."""
    ref = (await session.exec(
        select(Referral).where(
            col(Referral.id) == id,
            col(Referral.to_agency) == caller.agency,
            col(Referral.status).in_(OPEN),
            col(Referral.returnee_id).is_not(None),
        )
    )).first()
    if ref is None or ref.returnee_id is None:
        raise NotFound("No such referral with a returnee open to your agency")
    returnee = await session.get(Returnee, ref.returnee_id)
    if returnee is None:  # pragma: no cover - the foreign key keeps it
        raise NotFound("No such returnee")
    audit.record(session, "referral.returnee.read", resource_type="returnee", resource_id=returnee.id,
                 subjects=[("referral", ref.id)], purpose=f"referral:{ref.id}")
    return returnee
