"""Returnees: the batch upsert, who may read which record, and reading them.

The batch upsert works on the whole batch with a fixed number of statements, whatever its
size (:mod:`api.returnees.repository`): one SELECT of the sender's existing records by
``source_ref`` (locked on PostgreSQL, so two batches updating the same record queue up), one
statement matching or creating the persons by NIK blind index, one INSERT of the new records
(:mod:`api.core.bulk`), one executemany UPDATE of the changed ones. Records whose content did
not change (same keyed hash of the normalised input) are not written at all and raise no event.
:func:`upsert_batch` reads as its steps: validate, compare, persons, insert, update, events, audit.

Who may read a record is decided by :func:`api.returnees.repository.readable` only: callers
whose jurisdiction covers its origin district or sub-district, and the agency that pushed it.
The receiver of an open referral about it reads the referral's view at
``/v1/referrals/{id}/returnee``, not the record (:func:`get_readable`).

Who may write a record: the batch rejects each record whose origin lies outside where the
writer may write (:func:`api.core.access.may_write`: its jurisdiction; the whole province for
BP3MI, the border intake).

What a reply shows of the NIK, passport and phone: all of it with ``pii:read``, else nothing
but ``*_on_file`` (:func:`api.core.crypto.disclose`; :func:`public`).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import access, audit, clock, crypto, ids, outbox
from api.core.context import Caller
from api.core.errors import Conflict, NotFound, record_errors
from api.core.pagination import Position
from api.core.scopes import Scope
from api.core.settings import Settings
from api.core.unit import unit_of
from api.notices import service as notices
from api.notices.schemas import NoticeSummary
from api.referrals import repository as referrals
from api.register import service as register
from api.returnees import repository
from api.returnees.repository import ListFilter
from api.returnees.schemas import ReturneeIn
from models import Returnee, ReturneeBase
from models.regions import covers, province_of

RESOURCE = "returnee"

# What is encrypted, under which context (bound as associated data), and the blind index
# context (shared across tables, so the same NIK matches wherever it is held).
PII_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    # input field, column prefix, encryption context, index context
    ("nik", "nik", "returnee.nik", "nik"),
    ("passport_number", "passport", "returnee.passport", "passport"),
    ("phone", "phone", "returnee.phone", "phone"),
)

# Columns copied as they are from a validated record: the plain fields, declared once.
PLAIN_FIELDS = tuple(ReturneeBase.model_fields)


# --- the batch upsert ------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    """Per-record results (in the order of the batch, as the API returns them), and what was
    written, by origin district: the hook for raising deportation notices."""

    results: list[dict[str, Any]]
    touched: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Keys:
    data: bytes
    index: bytes
    # per PII field: (input field, encrypted column, index column, cipher)
    ciphers: tuple[tuple[str, str, str, crypto.FieldCipher], ...]
    content_mac: Any  # HMAC-SHA256 keyed with the index key (copied per record)

    @classmethod
    def of(cls, settings: Settings) -> _Keys:
        return _keys(settings.data_key_bytes, settings.index_key_bytes)


@lru_cache(maxsize=4)
def _keys(data: bytes, index: bytes) -> _Keys:
    ciphers = tuple(
        (fname, f"{prefix}_enc", f"{prefix}_index",
         crypto.FieldCipher(data_key=data, index_key=index, context=enc_ctx, index_context=idx_ctx))
        for fname, prefix, enc_ctx, idx_ctx in PII_FIELDS
    )
    return _Keys(data, index, ciphers, crypto.unwrap_hmac(hmac.new(index, b"returnee\x00", hashlib.sha256)))


def content_hash(item: ReturneeIn, keys: _Keys) -> str:
    """Keyed hash of the normalised record: equal input, equal hash; not reversible to the PII
    it covers without the index key."""
    mac = keys.content_mac.copy()
    # The validated fields as item.model_dump(mode="json") gives them, in the same bytes:
    # orjson writes enums as their values and dates as ISO 8601 itself.
    mac.update(orjson.dumps(item.__dict__, option=orjson.OPT_SORT_KEYS))
    return mac.hexdigest()


def _columns(item: ReturneeIn, digest: str, keys: _Keys) -> dict[str, Any]:
    values = item.__dict__  # the validated fields (getattr per field costs more)
    row = {name: values[name] for name in PLAIN_FIELDS}
    row["sex"] = str(item.sex)
    row["return_type"] = str(item.return_type)
    row["trafficking_status"] = str(item.trafficking_status)
    row["control_methods"] = [str(m) for m in item.control_methods]
    row["exploitation_types"] = [str(t) for t in item.exploitation_types]
    row["recruiter_relationship"] = None if item.recruiter_relationship is None else str(item.recruiter_relationship)
    for fname, enc_col, idx_col, cipher in keys.ciphers:
        value = getattr(item, fname)
        if value is None:
            row[enc_col] = row[idx_col] = None
        else:
            row[enc_col] = cipher.encrypt(value)
            row[idx_col] = cipher.blind_index(value)
    row["content_hash"] = digest
    return row


SOURCE_REF_REUSED = "source-ref-reused"


def _normal_name(name: str) -> str:
    return " ".join(name.casefold().split())


def _other_person(item: ReturneeIn, row: dict[str, Any], old: Any) -> dict[str, str] | None:
    """The error of a record whose ``source_ref`` is held by a record of another person, else
    ``None``. The same NIK is the same person. Another NIK with the same name and birth date
    is a corrected NIK (an update, which moves the record to that NIK's person); another NIK
    with another name or birth date is another person. Without two NIKs to compare, another
    person is another name and another birth date; a correction of one of them is an update.
    Two people under one ``source_ref`` would overwrite each other on every push."""
    same_name = _normal_name(item.full_name) == _normal_name(old.full_name)
    same_birth = item.birth_date == old.birth_date
    if row["nik_index"] and old.nik_index:
        if row["nik_index"] == old.nik_index or (same_name and same_birth):
            return None
        return {"field": "source_ref", "message": f"'{item.source_ref}' is the record of another person (another "
                "NIK, name or birth date); give this person a source_ref of its own"}
    if not same_name and not same_birth:
        return {"field": "source_ref", "message": f"'{item.source_ref}' is the record of another person (another "
                "name and birth date); give this person a source_ref of its own"}
    return None


@dataclass(slots=True)
class _Plan:
    """What a batch writes: new records and changed ones (``row`` holds the columns;
    ``old`` the stored keys, hash and version)."""

    creates: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    updates: list[tuple[dict[str, Any], dict[str, Any], Any]] = field(default_factory=list)


async def upsert_batch(session: AsyncSession, writer: Caller, records: Sequence[Any], *,
                       at_commit: bool = False) -> BatchOutcome:
    """Create or update the ``writer``'s agency's records keyed by their ``source_ref``.

    Each record is validated on its own; a bad one is ``rejected`` with its field errors and
    does not stop the others, nor does a later record repeating a ``source_ref`` of the same
    batch, nor one whose origin lies outside where the writer may write
    (:func:`api.core.access.may_write`). Emits ``returnee.created`` / ``returnee.updated`` (no
    personal data) and records one audit entry naming every record written. Never commits.

    ``at_commit``: the caller's unit reads and names nothing the batch writes before it commits
    (or sends the waiting writes first: :func:`notify_districts` does), so that a batch of new
    people's records may write them with the COMMIT (see below).
    """
    agency = writer.agency
    now = clock.now()  # one clock reading for the whole batch (its date checks, its timestamps)
    results, accepted = _validate(records, now.date(), writer)
    existing = await repository.existing_for_batch(session, agency, sorted({it.source_ref for _, it in accepted}))
    plan = _plan(accepted, existing, _Keys.of(unit_of(session).settings))
    # The persons before the list's head (as every unit writes them: in NIK order, holding no
    # head), then the head before the register's rows another batch may hold too (no two
    # batches deadlock, see api.core.changes): a batch that creates records takes it at their
    # numbered insert, one that only updates takes it first. The head is held to the commit, so
    # every round trip before it is one the batches of every partner do not queue behind.
    by_nik, fresh, created = await _persons(session, plan, now)
    # A batch of new records of people it created itself writes nothing that anything before
    # its commit reads (the register sums those people from the batch): the register's rows and
    # the records go with the COMMIT, the head held for the database's time only (api.core.unit,
    # "the last message"). Any other batch takes the head now (at its insert, or first if it
    # only updates), before the register reads what it sums.
    late = at_commit and not plan.updates and all(by_nik[row["nik_index"]] in created
                                                  for _, row in plan.creates if row["nik_index"])
    written = _created(agency, plan.creates, by_nik, fresh, now)
    if late:
        # Only this batch knows its new people: their register rows go first (nobody else can
        # hold them), then the records, which take the head, held from there to the COMMIT.
        touched = _emit(session, agency, written, intake=province_of(writer.jurisdiction))
        await _refresh_register(session, written, plan, created, at_commit=True)
        await _insert_created(session, written, at_commit=True)
    else:
        if plan.updates and not plan.creates:
            await repository.take_list(session)
        await _insert_created(session, written)
        written += await _update_changed(session, plan.updates, by_nik, now)
        touched = _emit(session, agency, written, intake=province_of(writer.jurisdiction))
        await _refresh_register(session, written, plan, created)
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "updated", "unchanged", "rejected")}
    audit.record(session, "returnee.batch", resource_type=RESOURCE, subjects=[(RESOURCE, row["id"]) for _, row in written],
                 source_agency=agency, records=len(results), created=counts["created"], updated=counts["updated"],
                 unchanged=counts["unchanged"], rejected=counts["rejected"])
    return BatchOutcome(results, touched, counts)


_VALIDATE = ReturneeIn.__pydantic_validator__.validate_python


def _validate_record(raw: Any, context: dict[str, Any]) -> ReturneeIn:
    """``ReturneeIn.model_validate(raw, context=context)`` without SQLModel's wrapper around it,
    which re-assigns the new object's ``__dict__`` and fields-set (needed for table models
    only): the same validation into the same object, a quarter cheaper."""
    item = ReturneeIn.__new__(ReturneeIn)
    _VALIDATE(raw, context=context, self_instance=item)
    return item


def _validate(
    records: Sequence[Any], today: date, writer: Caller
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], ReturneeIn]]]:
    """Every record's result (``rejected`` with its errors until written), and the valid ones
    with their result. A ``source_ref`` repeated in the batch is rejected after its first; a
    record whose origin the writer may not write for is rejected on its ``origin_district``."""
    context = {"today": today}
    results: list[dict[str, Any]] = []
    accepted: list[tuple[dict[str, Any], ReturneeIn]] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(records):
        ref = raw.get("source_ref") if isinstance(raw, dict) else None
        ref = ref.strip() if isinstance(ref, str) and ref.strip() else None
        res: dict[str, Any] = {"index": index, "source_ref": ref, "id": None, "status": "rejected",
                               "errors": [], "warnings": []}
        results.append(res)
        item: ReturneeIn | None
        try:
            item = _validate_record(raw, context)
        except ValidationError as exc:
            item = None
            res["errors"] = record_errors(exc)
        if ref is not None:
            first = first_index.setdefault(ref, index)
            if first != index:
                item = None
                res["errors"].insert(0, {"field": "source_ref",
                                         "message": f"duplicate of record {first} in this batch ('{ref}')"})
        if item is not None:
            outside = _outside(writer, item)
            if outside is not None:
                item = None
                res["errors"].append(outside)
        if item is not None:
            res["warnings"] = item.warnings(today)
            accepted.append((res, item))
    return results, accepted


def _outside(writer: Caller, item: ReturneeIn) -> dict[str, str] | None:
    """The field error of a record filed outside where ``writer`` may write, else ``None``.
    A record is filed under its sub-district when it gives one, else its district; the error
    names ``origin_district``, or ``origin_subdistrict`` for a writer of one sub-district of it."""
    origin = item.origin_subdistrict or item.origin_district
    if access.may_take_in(writer, origin):
        return None
    within = covers(item.origin_district, access.writable_region(writer))
    return {"field": "origin_subdistrict" if within else "origin_district",
            "message": access.outside_message(writer, origin)}


def _plan(accepted: list[tuple[dict[str, Any], ReturneeIn]], existing: dict[str, Any], keys: _Keys) -> _Plan:
    """New and changed records with their columns; a record whose content hash equals the
    stored one is ``unchanged`` and not written at all (no event either)."""
    plan = _Plan()
    for res, item in accepted:
        digest = content_hash(item, keys)
        old = existing.get(item.source_ref)
        if old is not None and old.content_hash == digest:
            res["status"], res["id"] = "unchanged", old.id
            continue
        row = _columns(item, digest, keys)
        if old is not None and (error := _other_person(item, row, old)) is not None:
            res["errors"], res["code"] = [error], SOURCE_REF_REUSED
            continue
        if old is None:
            plan.creates.append((res, row))
        else:
            plan.updates.append((res, row, old))
    return plan


async def _persons(
    session: AsyncSession, plan: _Plan, now: datetime
) -> tuple[dict[str, uuid.UUID], list[uuid.UUID], set[uuid.UUID]]:
    """The persons of the records written: the same NIK is the same person, wherever and by
    whomever it was pushed; a new record without a NIK is a new person. ``(person by NIK
    index, new anonymous persons, the persons created now)``."""
    nik_indexes = {row["nik_index"] for _, row in plan.creates if row["nik_index"]}
    nik_indexes |= {row["nik_index"] for _, row, old in plan.updates
                    if row["nik_index"] and row["nik_index"] != old.nik_index}
    anonymous = sum(1 for _, row in plan.creates if not row["nik_index"])
    return await repository.ensure_persons(session, nik_indexes, anonymous, now)


def _created(
    agency: str,
    creates: list[tuple[dict[str, Any], dict[str, Any]]],
    by_nik: dict[str, uuid.UUID],
    fresh: list[uuid.UUID],
    now: datetime,
) -> list[tuple[str, dict[str, Any]]]:
    """The new records' rows, each with its id and person: ``[("returnee.created", row)]``."""
    fresh_iter = iter(fresh)
    written = []
    for (res, row), rid in zip(creates, ids.new_ids(len(creates)), strict=True):
        row["id"] = rid
        row["person_id"] = by_nik[row["nik_index"]] if row["nik_index"] else next(fresh_iter)
        row.update(source_agency=agency, version=1, created_at=now, updated_at=now)
        res["status"], res["id"] = "created", row["id"]
        written.append(("returnee.created", row))
    return written


async def _insert_created(session: AsyncSession, written: list[tuple[str, dict[str, Any]]], *,
                          at_commit: bool = False) -> None:
    """Insert the new records (:func:`_created`) in one statement (``at_commit``: sent with the
    unit's COMMIT)."""
    if not written:
        return
    try:
        await repository.insert_rows(session, [row for _, row in written], at_commit=at_commit)
    except sa.exc.IntegrityError:
        # Only a concurrent batch creating the same source_ref gets here (all else was
        # checked): the whole batch rolls back and the sender retries.
        raise Conflict("Another request is writing the same records; retry the batch") from None


async def _refresh_register(session: AsyncSession, written: list[tuple[str, dict[str, Any]]], plan: _Plan,
                            created: set[uuid.UUID], *, at_commit: bool = False) -> None:
    """The register's person view of everyone written (and of those a changed NIK moved away);
    the records of a person this batch created are all in the batch."""
    mine: dict[uuid.UUID, list[Any]] = {pid: [] for pid in created}
    for _, row in written:
        if row["person_id"] in mine:
            mine[row["person_id"]].append(register.return_record(row))
    await register.refresh(session, {row["person_id"] for _, row in written}
                           | {old.person_id for _, _, old in plan.updates}, created=mine, at_commit=at_commit)


async def _update_changed(
    session: AsyncSession,
    updates: list[tuple[dict[str, Any], dict[str, Any], Any]],
    by_nik: dict[str, uuid.UUID],
    now: datetime,
) -> list[tuple[str, dict[str, Any]]]:
    """Update the changed records in one executemany, each a version on; a new NIK moves the
    record to that NIK's person. ``[("returnee.updated", row)]``."""
    if not updates:
        return []
    params = []
    written = []
    for res, row, old in updates:
        if row["nik_index"] and row["nik_index"] != old.nik_index:
            row["person_id"] = by_nik[row["nik_index"]]
        else:
            row["person_id"] = old.person_id
        row.update(b_id=old.id, version=old.version + 1, updated_at=now)
        res["status"], res["id"] = "updated", old.id
        params.append(row)
        written.append(("returnee.updated", {**row, "id": old.id}))
    await repository.update_rows(session, params)
    return written


def _emit(
    session: AsyncSession, agency: str, written: list[tuple[str, dict[str, Any]]], *, intake: str | None
) -> dict[str, list[uuid.UUID]]:
    """One event per record written (no personal data), filed under its origin district (and
    in the writer's province's feed too for a person of another province:
    :func:`api.core.outbox.emit_taken_in`); returns ``district -> ids`` (:attr:`BatchOutcome.touched`)."""
    touched: dict[str, list[uuid.UUID]] = {}
    for kind, row in written:
        touched.setdefault(row["origin_district"], []).append(row["id"])
        outbox.emit_taken_in(
            session,
            kind,
            {"id": str(row["id"]), "source_ref": row["source_ref"], "origin_district": row["origin_district"],
             "trafficking_status": row["trafficking_status"]},
            region=row["origin_district"],
            intake=intake,
            audience=[agency],
        )
    return touched


async def notify_districts(
    session: AsyncSession, caller: Caller, touched: dict[str, list[uuid.UUID]]
) -> list[dict[str, Any]]:
    """``POST /v1/returnees/batch?notify=true``: one deportation notice per district touched
    (``district -> returnee ids created or updated``), returned as the reply's ``notices``. The
    notices read and name the records: those waiting for the COMMIT are written first."""
    await unit_of(session).write_pending()
    raised = await notices.raise_for_batch(session, caller, touched)
    return [NoticeSummary.model_validate(n).model_dump(mode="json") for n in raised]


# --- who may read what ------------------------------------------------------------------------


class ReadThroughReferral(NotFound):
    """A 404 that says where to look: the caller reads this returnee only as the receiver of
    an open referral, at that referral's ``/returnee`` (what the referral needs, no more)."""

    slug, title = "read-through-referral", "Read this returnee through the referral"


async def get_readable(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Returnee:
    """The returnee ``id`` if ``caller`` may read it (:func:`api.returnees.repository.readable`),
    else :class:`NotFound` (as if absent), as a copy to show (not to change). The receiver of an
    open referral about it, outside that rule, does not read the record here (its address,
    employer, exploitation details and identifiers are not what a referral needs): its 404 is
    :class:`ReadThroughReferral`, pointing to ``/v1/referrals/{id}/returnee``, where it reads
    the referral's view."""
    try:
        return await repository.shown(session, caller, id)
    except NotFound:
        referral = await referrals.open_referral_for(session, caller, id)
        if referral is None:
            raise
    raise ReadThroughReferral(
        "Your agency reads this returnee through its open referral, and only what the referral needs",
        referral_id=str(referral.id), referral_returnee=f"/v1/referrals/{referral.id}/returnee",
    )


# --- reading ---------------------------------------------------------------------------------


def public(r: Returnee, *, pii: bool, data_key: bytes) -> dict[str, Any]:
    """A returnee as the API shows it: NIK, passport and phone decrypted when ``pii``; without
    it ``null``, with ``*_on_file`` saying whether one is held (:func:`api.core.crypto.disclose`:
    no part of an identifier is ever shown, since the rest of the record rebuilds the rest)."""
    out: dict[str, Any] = {
        "id": r.id, "person_id": r.person_id, "source_agency": r.source_agency, "version": r.version,
        **{name: getattr(r, name) for name in PLAIN_FIELDS},
        "created_at": r.created_at, "updated_at": r.updated_at, "pii_masked": not pii,
    }
    for fname, prefix, enc_ctx, _ in PII_FIELDS:
        out[fname], out[f"{prefix}_on_file"] = crypto.disclose(getattr(r, f"{prefix}_enc"), pii=pii,
                                                               context=enc_ctx, key=data_key)
    return out


async def read(session: AsyncSession, caller: Caller, id: uuid.UUID) -> tuple[Returnee, dict[str, Any]]:
    """One visible returnee, shaped for ``caller`` and audited."""
    r = await get_readable(session, caller, id)
    pii = caller.has(Scope.pii_read)
    audit.record(session, "returnee.read", resource_type=RESOURCE, resource_id=r.id,
                 subjects=[("person", r.person_id)], pii=pii)
    return r, public(r, pii=pii, data_key=unit_of(session).settings.data_key_bytes)


async def list_visible(
    session: AsyncSession,
    caller: Caller,
    filters: ListFilter,
    *,
    after: Position | None,
    limit: int,
) -> tuple[list[dict[str, Any]], Position | None]:
    """Up to ``limit`` readable returnees in ``(updated_at, id)`` order after the position
    ``after``, and the position to continue from (``None`` at the end); audited. In the sync
    order (``filters.sort == "changes"``) there is always a position to continue from: the last
    change seen, where the next sync starts."""
    page = await repository.readable_page(session, caller, filters, after=after, limit=limit)
    rows = page.items
    nxt = page.next
    if filters.sort == "changes" and nxt is None:
        nxt = (rows[-1].change_pos,) if rows else (after or (0,))
    pii = caller.has(Scope.pii_read)
    audit.record(session, "returnee.list", resource_type=RESOURCE,
                 subjects=[(RESOURCE, r.id) for r in rows], pii=pii, count=len(rows))
    key = unit_of(session).settings.data_key_bytes
    return [public(r, pii=pii, data_key=key) for r in rows], nxt
