"""Referrals: creating, reading, listing and moving them. Queries live in
:mod:`api.referrals.repository` (who may see a referral is its :func:`~api.referrals.repository.readable`),
moves are decided by :mod:`api.referrals.workflow`; nothing here commits (the request's session does).

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

Who may refer what, to whom
---------------------------
* about a returnee record: one the sender may read (:func:`api.returnees.repository.readable`);
* about a person described inline, from anywhere: the person's district describes the
  person (where they live, so that district's oversight follows the case), it is not a place
  the sender writes into; and a referral goes to the one agency it names, wherever that is.
  So the write rule of :mod:`api.core.access` (records and notices filed under a region lie
  where the writer may write) does not limit referrals;
* to a registered agency other than the sender that acts on referrals: not the operator, not an
  inspectorate (:data:`NOT_RECEIVERS`; 422 on ``to_agency``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, clock, crypto, outbox
from api.core.context import Caller
from api.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from api.core.pagination import Position
from api.core.preconditions import check_if_match
from api.core.unit import context_of, unit_of
from api.referrals import repository, workflow
from api.referrals.repository import SORTS, ReferralQuery
from api.referrals.schemas import ADULT_AGE, ConsentIn, ReferralCreate, SubjectIn, age_on
from api.referrals.workflow import Action, Party
from api.returnees import repository as returnees
from models import Agency, AgencyKind, Referral, ReferralHistory, ReferralStatus, Returnee, Sex

#: Agencies that never act on a referral, and what they are instead: the operator runs the
#: service, the inspectorate audits it. A referral to them would wait for nobody.
NOT_RECEIVERS: dict[AgencyKind, str] = {
    AgencyKind.operator: "the service's operator",
    AgencyKind.inspectorate: "an inspectorate (it audits, it does not serve cases)",
}


def counted_for(caller: Caller) -> sa.ColumnElement[bool]:
    """The referrals in ``caller``'s statistics (:func:`api.referrals.repository.counted`):
    by jurisdiction, as every figure is, not by the agency kind that decides who reads records."""
    return repository.counted(caller)


def party_of(caller: Caller, referral: Referral) -> Party | None:
    if referral.from_agency == caller.agency:
        return Party.sender
    if referral.to_agency == caller.agency:
        return Party.receiver
    return None


def _subjects(r: Referral) -> list[tuple[str, Any]]:
    return [("returnee", r.returnee_id)] if r.returnee_id else []


def _history(r: Referral, seq: int, caller: Caller, frm: ReferralStatus | None, action: str, at: datetime,
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
    receiving agency, one that does not act on referrals, or a returnee the caller may not
    read; 409 for a reused ``sender_ref``."""
    receiver = await _receiving_agency(session, caller, data.to_agency)
    now = clock.now()
    ref = _new_referral(caller, receiver, data, now)
    if data.returnee_id is not None:
        _about_returnee(ref, await _readable_returnee(session, caller, data.returnee_id), now)
    else:
        assert data.subject is not None  # the schema requires returnee_id or subject
        _about_subject(ref, data.subject, now, unit_of(session).settings.data_key_bytes)
    _record_consent(ref, data.consent)
    if data.sender_ref is not None:
        await _check_sender_ref_free(session, caller, data.sender_ref)
    first = await _save(session, ref, _history(ref, 1, caller, None, "request", now, data.note))
    _announce(session, ref)
    return ref, [first]


async def _receiving_agency(session: AsyncSession, caller: Caller, code: str) -> Agency:
    """The registered agency ``code``, not the caller's own, and one that acts on referrals
    (not of :data:`NOT_RECEIVERS`); 422 on ``to_agency`` otherwise."""
    receiver = await session.get(Agency, code)
    if receiver is None:
        raise _invalid("to_agency", f"no registered agency {code}")
    if receiver.code == caller.agency:
        raise _invalid("to_agency", "an agency cannot refer a case to itself")
    if AgencyKind(receiver.kind) in NOT_RECEIVERS:
        raise _invalid("to_agency", f"{code} is {NOT_RECEIVERS[AgencyKind(receiver.kind)]}: it does not act on "
                                    "referrals; refer the case to an agency that serves the person")
    return receiver


def _new_referral(caller: Caller, receiver: Agency, data: ReferralCreate, now: datetime) -> Referral:
    """The referral as requested, its regions copied from both agencies (oversight visibility
    does not move when an agency's jurisdiction is edited later), due by its urgency."""
    return Referral(
        from_agency=caller.agency, to_agency=receiver.code, sender_ref=data.sender_ref,
        status=ReferralStatus.requested, from_region=caller.jurisdiction, to_region=receiver.jurisdiction,
        reason=data.reason, legal_basis=data.legal_basis, urgency=data.urgency, note=data.note,
        processing_basis=data.processing_basis, due_at=workflow.due_at(data.urgency, now),
        created_at=now, updated_at=now,
    )


async def _readable_returnee(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Returnee:
    """The returnee ``id`` if the caller may read it: the same rule as ``GET /v1/returnees/{id}``
    (:func:`api.returnees.repository.readable`), answered as a 422 on the field."""
    returnee = await returnees.find_readable(session, caller, id)
    if returnee is None:
        raise _invalid("returnee_id", "no such returnee among those your agency may see")
    return returnee


def _about_returnee(ref: Referral, returnee: Returnee, now: datetime) -> None:
    ref.returnee_id = returnee.id
    ref.subject_region = returnee.origin_subdistrict or returnee.origin_district
    ref.subject_is_child = returnee.birth_date is not None and age_on(returnee.birth_date, now.date()) < ADULT_AGE


def _about_subject(ref: Referral, s: SubjectIn, now: datetime, data_key: bytes) -> None:
    """A person described inline: the minimum, the phone number encrypted."""
    ref.subject_name, ref.subject_sex, ref.subject_birth_date = s.full_name, s.sex and Sex(s.sex), s.birth_date
    ref.subject_is_child = s.child_on(now.date())
    ref.subject_region = s.district
    if s.phone:
        ref.subject_phone_enc = crypto.encrypt(s.phone, context="referral.subject_phone", key=data_key)


def _record_consent(ref: Referral, consent: ConsentIn | None) -> None:
    """The subject's consent, if given; a child's names the guardian (422 otherwise: a returnee
    record's age is known only here, an inline subject's was checked by the schema)."""
    if consent is None or not consent.given:
        return
    if ref.subject_is_child and not consent.guardian:
        raise _invalid("consent.guardian", "the subject is a child: consent needs the guardian who gave it")
    ref.consent_given = True
    ref.consent_given_by, ref.consent_method, ref.consent_guardian = (
        consent.given_by, consent.method, consent.guardian)
    ref.consent_given_at = consent.given_at.astimezone(UTC) if consent.given_at else None


async def _check_sender_ref_free(session: AsyncSession, caller: Caller, sender_ref: str) -> None:
    taken = await repository.sender_ref_taken(session, caller, sender_ref)
    if taken is not None:
        raise Conflict(f"Your agency already has a referral with sender_ref {sender_ref}", referral_id=str(taken))


async def _save(session: AsyncSession, ref: Referral, first: ReferralHistory) -> ReferralHistory:
    """Write the referral and its first history entry. A concurrent request that took the same
    ``sender_ref`` between the check and now is a 409 too (the unique key)."""
    session.add(ref)
    session.add(first)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"Your agency already has a referral with sender_ref {ref.sender_ref}") from None
    repository.changed(session, ref)
    return first


def _announce(session: AsyncSession, ref: Referral) -> None:
    """The creation's audit entry and its ``referral.requested`` event, to both parties."""
    audit.record(session, "referral.create", resource_type="referral", resource_id=ref.id,
                 subjects=_subjects(ref), to_agency=ref.to_agency, reason=ref.reason,
                 consent=ref.consent_given, processing_basis=ref.processing_basis)
    outbox.emit(
        session, "referral.requested",
        {"id": str(ref.id), "from_agency": ref.from_agency, "to_agency": ref.to_agency, "reason": ref.reason,
         "urgency": ref.urgency, "due_at": ref.due_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "status": ref.status},
        region=ref.region, audience=[ref.from_agency, ref.to_agency],
    )


# --- reading -----------------------------------------------------------------------------


async def get_referral(
    session: AsyncSession, caller: Caller, id: uuid.UUID
) -> tuple[Referral, list[ReferralHistory]]:
    """One referral the caller may see, with its history (404 otherwise)."""
    ref = await repository.shown(session, caller, id)
    audit.record(session, "referral.read", resource_type="referral", resource_id=ref.id, subjects=_subjects(ref))
    return ref, await repository.history_shown(session, ref.id)


async def list_referrals(
    session: AsyncSession, caller: Caller, q: ReferralQuery
) -> tuple[list[Referral], Position | None]:
    """Referrals the caller may see, filtered and keyset-paginated in ``q.sort`` order after
    the position ``q.after``; returns ``(items, the position to continue from)``."""
    if q.sort not in SORTS:
        raise _invalid("sort", f"sort by one of {', '.join(SORTS)}")
    page = await repository.readable_page(session, caller, q)
    rows = page.items
    subjects: list[tuple[str, Any]] = []
    for r in rows:
        subjects.append(("referral", r.id))
        subjects.extend(_subjects(r))
    audit.record(session, "referral.list", resource_type="referral", subjects=subjects, count=len(rows),
                 role=q.role)
    if q.sort == "changes" and page.next is None:  # the sync order: always where the next sync starts
        return rows, ((rows[-1].change_pos,) if rows else (q.after or (0,)))
    return rows, page.next


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
    ref = await repository.get_readable(session, caller, id)
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
    await repository.bump(session, ref, **values)
    seq = await repository.next_seq(session, ref.id)
    session.add(_history(ref, seq, caller, before, action.value, now, note))
    await session.flush()

    moved: dict[str, Any] = {"from": before.value, "to": after.value, "with_note": bool(note)}
    audit.record(session, f"referral.{action.value}", resource_type="referral", resource_id=ref.id,
                 subjects=_subjects(ref), **moved)
    # (the note itself stays in the referral's history: the audit chain cannot forget it)
    outbox.emit(
        session, "referral.status_changed",
        {"id": str(ref.id), "from": before.value, "to": after.value, "action": action.value,
         "from_agency": ref.from_agency, "to_agency": ref.to_agency},
        region=ref.region, audience=[ref.from_agency, ref.to_agency],
    )
    return ref, await repository.history_of(session, ref.id)


# --- the referred returnee ---------------------------------------------------------------


async def referred_returnee(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Returnee:
    """The returnee of an open referral addressed to the caller's agency; 404 for anyone else,
    for a closed referral, and for a referral about an inline subject."""
    ref = await repository.open_with_returnee(session, caller, id)
    if ref is None:
        raise NotFound("No such referral with a returnee open to your agency")
    returnee = await returnees.referred(session, ref)
    audit.record(session, "referral.returnee.read", resource_type="returnee", resource_id=returnee.id,
                 subjects=[("referral", ref.id)], purpose=f"referral:{ref.id}")
    return returnee
