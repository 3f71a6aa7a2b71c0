"""Arrival manifests: registering an announced deportation, marking who arrived at the border,
following each arrived person home, and the lists that drive the district's week.

The walk, and who does each step:

1. **Letter** (``manifests:write``, BP3MI): the consulate's letter, the expected day, the border
   post and the people listed (:func:`create_manifest`). Each person's origin must lie where the
   registering agency may file a returnee (:func:`api.core.access.may_take_in`: for BP3MI, the
   border intake, the whole province and every other province). One ``manifest.announced`` event
   per origin district, so each district knows whom to expect.
2. **Border** (the agency that registered it; ``If-Match`` of the manifest): each person
   ``arrived`` or ``not_arrived`` (:func:`mark_arrivals`). An arrived person of known origin
   becomes a returnee record of that agency (``api.returnees.service.upsert_batch``, source_ref
   ``manifest:<person id>``) and is listed on a deportation notice to its origin district,
   raised by ``api.notices.service.raise_for`` (one workflow for every notice): a district of
   another province where no agency is registered gets a notice that waits
   (``waiting_for_agency``) and is delivered when one registers.
3. **Home** (``manifests:locate``, the origin district: where the caller may write,
   :func:`api.core.access.may_write`; ``If-Match`` of the person): ``located`` (the desa, who saw
   them, when) or ``not_located`` (:func:`record_outcome`); ``not_located`` may later become
   ``located``.

Who sees what: :mod:`api.manifests.repository` (the registering agency and the province see
every person; a district its own people; another district nothing, a 404). NIK and passport
numbers are encrypted at rest with a blind index and shown only with ``pii:read``
(:func:`api.core.crypto.disclose`), exactly as for returnees. Every read and write of the
people is audited; every step is an event on the feed (and so on webhooks).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import access, audit, clock, crypto, outbox, preconditions
from api.core.context import Caller
from api.core.errors import Conflict, Problem, ValidationFailed
from api.core.pagination import Position, Slice
from api.core.scopes import Scope
from api.core.unit import unit_of
from api.manifests import repository
from api.manifests.schemas import ArrivalsIn, ManifestCreate, OutcomeIn
from api.notices import service as notices
from api.notices.schemas import today_in_kalbar
from api.returnees import service as returnees
from models import Agency, Manifest, ManifestPerson, ManifestPersonStatus, Notice, regions
from models.regions import province_of

RESOURCE = "manifest"
PERSON = "manifest_person"

# input field, column prefix, encryption context, blind index context (shared with returnees:
# the same NIK matches wherever it is held)
PII_FIELDS = (("nik", "nik", "manifest.nik", "nik"), ("passport_number", "passport", "manifest.passport", "passport"))

S = ManifestPersonStatus


class NotIssuer(Problem):
    status, slug, title = 403, "not-issuer", "Only the agency that registered the manifest may do this"


def _ciphers(session: AsyncSession) -> list[tuple[str, str, crypto.FieldCipher]]:
    settings = unit_of(session).settings
    return [(fname, prefix, crypto.FieldCipher(data_key=settings.data_key_bytes, index_key=settings.index_key_bytes,
                                               context=enc, index_context=idx))
            for fname, prefix, enc, idx in PII_FIELDS]


# --- the letter -------------------------------------------------------------------------------


async def create_manifest(session: AsyncSession, caller: Caller, data: ManifestCreate) -> Manifest:
    """Register the letter and its people (403 ``outside-jurisdiction`` naming each person whose
    origin the caller may not file; 409 when the agency already registered this letter)."""
    outside = [{"field": f"persons.{i}.origin_district", "message": access.outside_message(caller, p.origin_district)}
               for i, p in enumerate(data.persons)
               if p.origin_district is not None and not access.may_take_in(caller, p.origin_district)]
    if outside:
        raise access.OutsideJurisdiction("Your agency may not register people of these regions", errors=outside)
    if await repository.letter_registered(session, caller.agency, data.letter_ref):
        raise Conflict(f"Your agency already registered the letter {data.letter_ref}")
    now = clock.now()
    manifest = Manifest(created_by=caller.agency, letter_ref=data.letter_ref, letter_date=data.letter_date,
                        expected_date=data.expected_date, entry_point=data.entry_point, note=data.note,
                        person_count=len(data.persons), created_at=now, updated_at=now)
    session.add(manifest)
    try:
        await session.flush()
    except sa.exc.IntegrityError:  # a concurrent request registering the same letter
        raise Conflict(f"Your agency already registered the letter {data.letter_ref}") from None
    ciphers = _ciphers(session)
    rows = []
    for i, p in enumerate(data.persons, start=1):
        row: dict[str, Any] = {
            "id": uuid.uuid4(), "manifest_id": manifest.id, "position": i, "full_name": p.full_name,
            "sex": str(p.sex), "birth_date": p.birth_date, "origin_district": p.origin_district,
            "origin_subdistrict": p.origin_subdistrict, "status": S.expected.value, "version": 1,
            "created_at": now, "updated_at": now,
        }
        for fname, prefix, cipher in ciphers:
            value = getattr(p, fname)
            row[f"{prefix}_enc"] = None if value is None else cipher.encrypt(value)
            row[f"{prefix}_index"] = None if value is None else cipher.blind_index(value)
        rows.append(row)
    try:
        await repository.insert_persons(session, rows)
    except sa.exc.IntegrityError:  # a concurrent request registering the same letter
        raise Conflict(f"Your agency already registered the letter {data.letter_ref}") from None
    by_district = Counter(r["origin_district"] for r in rows)
    issuer_region = province_of(caller.jurisdiction)
    outbox.emit(session, "manifest.created",
                {"id": str(manifest.id), "created_by": caller.agency, "letter_ref": manifest.letter_ref,
                 "expected_date": manifest.expected_date.isoformat(), "entry_point": str(manifest.entry_point),
                 "person_count": manifest.person_count},
                region=issuer_region, audience=[caller.agency])
    for district, n in sorted(by_district.items(), key=lambda kv: kv[0] or ""):
        if district is None:
            continue
        outbox.emit_taken_in(
            session, "manifest.announced",
            {"id": str(manifest.id), "district": district, "expected_date": manifest.expected_date.isoformat(),
             "entry_point": str(manifest.entry_point), "person_count": n},
            region=district, intake=issuer_region, audience=[caller.agency])
    audit.record(session, "manifest.create", resource_type=RESOURCE, resource_id=manifest.id,
                 subjects=[(PERSON, r["id"]) for r in rows], persons=len(rows),
                 with_nik=sum(1 for r in rows if r["nik_enc"]), with_passport=sum(1 for r in rows if r["passport_enc"]))
    return manifest


# --- reading ----------------------------------------------------------------------------------


def person_public(p: ManifestPerson, m: Manifest, *, pii: bool, data_key: bytes) -> dict[str, Any]:
    """A person as the API shows them (identifiers only with ``pii``; see the module)."""
    district = regions.get(p.origin_district) if p.origin_district else None
    village = regions.get(p.located_village) if p.located_village else None
    out: dict[str, Any] = {
        "id": p.id, "manifest_id": p.manifest_id, "position": p.position, "letter_ref": m.letter_ref,
        "expected_date": m.expected_date, "entry_point": m.entry_point, "full_name": p.full_name, "sex": p.sex,
        "birth_date": p.birth_date, "pii_masked": not pii, "origin_district": p.origin_district,
        "origin_district_name": district.name if district else None, "origin_subdistrict": p.origin_subdistrict,
        "status": p.status, "arrived_on": p.arrived_on, "returnee_id": p.returnee_id, "notice_id": p.notice_id,
        "located_village": p.located_village, "located_village_name": village.name if village else None,
        "seen_by": p.seen_by, "seen_on": p.seen_on, "outcome_note": p.outcome_note, "outcome_by": p.outcome_by,
        "outcome_at": p.outcome_at, "version": p.version, "updated_at": p.updated_at,
    }
    for fname, prefix, enc, _ in PII_FIELDS:
        out[fname], out[f"{prefix}_on_file"] = crypto.disclose(getattr(p, f"{prefix}_enc"), pii=pii, context=enc,
                                                               key=data_key)
    return out


def summary_public(m: Manifest) -> dict[str, Any]:
    return {"id": m.id, "created_by": m.created_by, "letter_ref": m.letter_ref, "letter_date": m.letter_date,
            "expected_date": m.expected_date, "entry_point": m.entry_point, "entry_point_name": m.entry_point.label,
            "note": m.note, "person_count": m.person_count, "version": m.version, "created_at": m.created_at,
            "updated_at": m.updated_at}


@dataclass
class ManifestView:
    manifest: Manifest
    body: dict[str, Any]


async def describe(session: AsyncSession, caller: Caller, manifest: Manifest, *, action: str) -> ManifestView:
    """The manifest with the people the caller may see; audited as ``action``."""
    persons = await repository.persons_of(session, caller, manifest.id)
    pii = caller.has(Scope.pii_read)
    audit.record(session, action, resource_type=RESOURCE, resource_id=manifest.id,
                 subjects=[(PERSON, p.id) for p in persons], pii=pii, count=len(persons))
    key = unit_of(session).settings.data_key_bytes
    body = summary_public(manifest) | {
        "persons": [person_public(p, manifest, pii=pii, data_key=key) for p in persons],
        "counts": dict(Counter(str(p.status) for p in persons)),
    }
    return ManifestView(manifest, body)


async def get_manifest(session: AsyncSession, caller: Caller, manifest_id: uuid.UUID) -> ManifestView:
    manifest = await repository.get_readable(session, caller, manifest_id)
    return await describe(session, caller, manifest, action="manifest.read")


async def list_manifests(session: AsyncSession, caller: Caller, *, after: Position | None,
                         limit: int) -> Slice[Manifest]:
    """The manifests the caller may see, newest first (no personal data: the letters only)."""
    page = await repository.readable_page(session, caller, after=after, limit=limit)
    audit.record(session, "manifest.list", resource_type=RESOURCE, subjects=[(RESOURCE, m.id) for m in page.items])
    return page


async def get_person(session: AsyncSession, caller: Caller, manifest_id: uuid.UUID,
                     person_id: uuid.UUID) -> tuple[ManifestPerson, dict[str, Any]]:
    person, manifest = await repository.get_person(session, caller, manifest_id, person_id)
    pii = caller.has(Scope.pii_read)
    audit.record(session, "manifest.person_read", resource_type=PERSON, resource_id=person.id,
                 subjects=[(RESOURCE, manifest.id)], pii=pii)
    return person, person_public(person, manifest, pii=pii, data_key=unit_of(session).settings.data_key_bytes)


def week_of(today: date) -> tuple[date, date]:
    """Monday to Sunday of the week of ``today``."""
    monday = today - timedelta(days=today.weekday())
    return monday, monday + timedelta(days=6)


async def week_list(
    session: AsyncSession, caller: Caller, view: str, *, district: str | None, after: Position | None, limit: int
) -> tuple[list[dict[str, Any]], Position | None]:
    """One of the lists that drive the district's week, of the people the caller may see
    (today is the day in West Indonesia Time):

    * ``expected_this_week``: listed, not yet marked, expected Monday to Sunday of this week,
      by expected day;
    * ``arrived_not_located``: arrived in the last 7 days and not located yet (``arrived`` or
      ``not_located``), by arrival day;
    * ``not_located_after_7_days``: arrived 7 days ago or more and still not located."""
    today = today_in_kalbar()
    page = await repository.week_page(session, caller, view, today=today, week=week_of(today), district=district,
                                      after=after, limit=limit)
    pii = caller.has(Scope.pii_read)
    audit.record(session, "manifest.person_list", resource_type=PERSON, subjects=[(PERSON, p.id) for p, _ in page.items],
                 pii=pii, view=view, filters={"district": district} if district else None)
    key = unit_of(session).settings.data_key_bytes
    return [person_public(p, m, pii=pii, data_key=key) for p, m in page.items], page.next


# --- the border -------------------------------------------------------------------------------


def _decrypt(person: ManifestPerson, prefix: str, context: str, key: bytes) -> str | None:
    token = getattr(person, f"{prefix}_enc")
    return None if token is None else crypto.decrypt(token, context=context, key=key)


def _returnee_record(person: ManifestPerson, manifest: Manifest, arrived_on: date, key: bytes) -> dict[str, Any]:
    return {
        "source_ref": f"manifest:{person.id}", "full_name": person.full_name, "sex": str(person.sex),
        "birth_date": person.birth_date.isoformat() if person.birth_date else None,
        "nik": _decrypt(person, "nik", "manifest.nik", key),
        "passport_number": _decrypt(person, "passport", "manifest.passport", key),
        "origin_district": person.origin_district, "origin_subdistrict": person.origin_subdistrict,
        "returned_from_country": "MY", "return_type": "deported", "return_date": arrived_on.isoformat(),
        "entry_point": manifest.entry_point.label, "documented": person.passport_enc is not None,
    }


async def mark_arrivals(
    session: AsyncSession, caller: Caller, manifest_id: uuid.UUID, if_match: str | None, data: ArrivalsIn
) -> Manifest:
    """The registering agency marks who came through the border post. ``expected`` or
    ``not_arrived`` people may be marked; an ``arrived`` one (or later) is a 409. Each arrived
    person of known origin becomes a returnee record and is on its district's notice."""
    manifest = await repository.get_readable(session, caller, manifest_id)
    if manifest.created_by != caller.agency:
        raise NotIssuer(f"Only {manifest.created_by} marks who of this manifest arrived")
    preconditions.check_if_match(if_match, manifest.version)
    found = await repository.persons_by_id(session, caller, manifest.id, [m.person_id for m in data.persons])
    errors = []
    for i, m in enumerate(data.persons):
        p = found.get(m.person_id)
        if p is None:
            errors.append({"field": f"persons.{i}.person_id", "message": f"no person {m.person_id} on this manifest"})
        elif p.status not in (S.expected, S.not_arrived):
            errors.append({"field": f"persons.{i}.status", "message": f"the person is already {p.status}"})
    if errors:
        if all(e["field"].endswith(".status") for e in errors):
            raise Conflict("Some people were already marked as arrived", errors=errors)
        raise ValidationFailed("Some people are not on this manifest", errors=errors)
    now = clock.now()
    await repository.bump_manifest(session, manifest, manifest.version, updated_at=now)

    arrived = [found[m.person_id] for m in data.persons if m.status == "arrived"]
    key = unit_of(session).settings.data_key_bytes
    known = [p for p in arrived if p.origin_district]
    returnee_of: dict[uuid.UUID, uuid.UUID] = {}
    notice_of: dict[str, Notice] = {}
    if known:
        outcome = await returnees.upsert_batch(session, caller,
                                               [_returnee_record(p, manifest, data.arrived_on, key) for p in known])
        index_of = {m.person_id: i for i, m in enumerate(data.persons)}
        rejected = [{"field": f"persons.{index_of[p.id]}", "message": "; ".join(e["message"] for e in r["errors"])}
                    for p, r in zip(known, outcome.results, strict=True) if r["status"] == "rejected"]
        if rejected:
            raise ValidationFailed("Some people cannot be recorded as returnees", errors=rejected)
        returnee_of = {p.id: r["id"] for p, r in zip(known, outcome.results, strict=True)}
        touched: dict[str, list[uuid.UUID]] = defaultdict(list)
        for p in known:
            touched[p.origin_district or ""].append(returnee_of[p.id])
        label = manifest.entry_point.label
        for raised in await notices.raise_for(
            session, caller, touched,
            summary=f"Deportees of {manifest.letter_ref} who arrived through {label} on {data.arrived_on.isoformat()}",
        ):
            notice_of[raised.district] = raised

    issuer_region = province_of(caller.jurisdiction)
    for m in data.persons:
        p = found[m.person_id]
        status = S.arrived if m.status == "arrived" else S.not_arrived
        notice = notice_of.get(p.origin_district or "") if status == S.arrived else None
        await repository.bump_person(
            session, p, p.version, status=status, arrived_on=data.arrived_on if status == S.arrived else None,
            marked_at=now, updated_at=now, returnee_id=returnee_of.get(p.id),
            notice_id=notice.id if notice is not None else None,
        )
        outbox.emit_taken_in(
            session, f"manifest.person_{status}",
            {"manifest_id": str(manifest.id), "person_id": str(p.id), "origin_district": p.origin_district,
             "arrived_on": data.arrived_on.isoformat() if status == S.arrived else None,
             "returnee_id": str(returnee_of[p.id]) if p.id in returnee_of else None,
             "notice_id": str(notice.id) if notice is not None else None,
             "notice_status": str(notice.status) if notice is not None else None},
            region=p.origin_district, intake=issuer_region, audience=[manifest.created_by])
    audit.record(session, "manifest.arrivals", resource_type=RESOURCE, resource_id=manifest.id,
                 subjects=[(PERSON, m.person_id) for m in data.persons]
                 + [("returnee", rid) for rid in returnee_of.values()],
                 arrived=len(arrived), not_arrived=len(data.persons) - len(arrived),
                 notices=[str(n.id) for n in notice_of.values()])
    return manifest


# --- home -------------------------------------------------------------------------------------


async def record_outcome(
    session: AsyncSession, caller: Caller, manifest_id: uuid.UUID, person_id: uuid.UUID, if_match: str | None,
    data: OutcomeIn,
) -> tuple[ManifestPerson, dict[str, Any]]:
    """The origin district records whether it located an arrived person (see the module)."""
    person, manifest = await repository.get_person(session, caller, manifest_id, person_id)
    origin = person.origin_subdistrict or person.origin_district
    if origin is None or not access.may_write(caller, origin):
        region = origin or "an unknown origin"
        raise access.OutsideJurisdiction(
            f"Only the person's home district records whether they were located ({region})",
            errors=[{"field": "origin_district", "message": access.outside_message(caller, region)}])
    preconditions.check_if_match(if_match, person.version)
    if person.status not in (S.arrived, S.not_located):
        raise Conflict(f"The person is {person.status}: only an arrived person not yet located can be located",
                       status_now=str(person.status))
    problem = data.village_error(person.origin_district)
    if problem:
        raise ValidationFailed("The desa does not fit the person's origin", errors=[{"field": "village", "message": problem}])
    if person.arrived_on is not None and data.seen_on < person.arrived_on:
        raise ValidationFailed("The person was not yet back on that day", errors=[
            {"field": "seen_on", "message": f"seen_on is before the arrival ({person.arrived_on.isoformat()})"}])
    now = clock.now()
    status = S.located if data.outcome == "located" else S.not_located
    await repository.bump_person(
        session, person, person.version, status=status,
        located_village=data.village if status == S.located else None,
        seen_by=data.seen_by, seen_on=data.seen_on, outcome_note=data.note, outcome_by=caller.agency,
        outcome_at=now, updated_at=now,
    )
    issuer = await session.get(Agency, manifest.created_by)
    outbox.emit_taken_in(
        session, f"manifest.person_{status}",
        {"manifest_id": str(manifest.id), "person_id": str(person.id), "origin_district": person.origin_district,
         "village": person.located_village, "seen_on": data.seen_on.isoformat(), "recorded_by": caller.agency,
         "returnee_id": str(person.returnee_id) if person.returnee_id else None},
        region=person.origin_district, intake=province_of(issuer.jurisdiction) if issuer else None,
        audience=[manifest.created_by])
    subjects: list[tuple[str, Any]] = [(PERSON, person.id)]
    if person.returnee_id:
        subjects.append(("returnee", person.returnee_id))
    audit.record(session, "manifest.person_outcome", resource_type=PERSON, resource_id=person.id,
                 subjects=subjects, result=str(status), village=person.located_village)
    pii = caller.has(Scope.pii_read)
    return person, person_public(person, manifest, pii=pii, data_key=unit_of(session).settings.data_key_bytes)
