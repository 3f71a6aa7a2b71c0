"""Returnees: the batch upsert, who may see which record, and reading them.

The batch upsert works on the whole batch with a fixed number of statements, whatever its
size: one SELECT of the sender's existing records by ``source_ref`` (locked on PostgreSQL, so
two batches updating the same record queue up), one statement matching or creating the persons
by NIK blind index, one INSERT of the new records (:mod:`api.bulk`), one executemany UPDATE of
the changed ones. Records whose content did not change (same keyed hash of the normalised
input) are not written at all and raise no event.

Visibility lives in :func:`visible` / :func:`get_visible` only: a record is visible to callers
whose jurisdiction covers its origin district or sub-district, and to the agency that pushed it.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import bulk, clock, crypto
from api.core import audit
from api.core.db import execute_text
from api.core.access import in_jurisdiction
from api.core.context import Caller
from api.core.errors import Conflict, NotFound
from api.core import outbox
from api.notices import service as notices
from api.notices.schemas import NoticeSummary
from api.referrals import service as referrals
from api.returnees.schemas import ReturneeIn
from api.core.settings import Settings
from api.core.unit import unit_of
from models import Person, Referral, Returnee

RESOURCE = "returnee"

# What is encrypted, under which context (bound as associated data), and the blind index
# context (shared across tables, so the same NIK matches wherever it is held).
PII_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    # input field, column prefix, encryption context, index context
    ("nik", "nik", "returnee.nik", "nik"),
    ("passport_number", "passport", "returnee.passport", "passport"),
    ("phone", "phone", "returnee.phone", "phone"),
)

# Columns copied as they are from a validated record.
PLAIN_FIELDS = (
    "source_ref", "full_name", "sex", "birth_date", "origin_district", "origin_subdistrict", "address",
    "returned_from_country", "returned_from_region", "return_type", "return_date", "entry_point",
    "employer", "sector", "documented", "trafficking_status", "control_methods", "exploitation_types",
    "recruiter_relationship",
)
CONTENT_COLUMNS = (*PLAIN_FIELDS, "nik_enc", "nik_index", "passport_enc", "passport_index", "phone_enc",
                   "phone_index", "content_hash")


# --- the batch upsert ------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    """Per-record results (in the order of the batch, as the API returns them), and what was
    written, by origin district: the hook for raising deportation notices."""

    results: list[dict[str, Any]]
    touched: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _field(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc) or "record"


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid")).removeprefix("Value error, ")}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


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


_PG_PERSONS = sa.text(
    """
    INSERT INTO person (id, nik_index, created_at)
    SELECT id, nik_index, created_at FROM json_populate_recordset(NULL::person, :rows)
    ON CONFLICT (nik_index) DO UPDATE SET nik_index = EXCLUDED.nik_index
    RETURNING id, nik_index
    """
)


# The sender's existing records of a batch, locked (two batches updating the same record queue
# up; the refs are sorted, so they lock in the same order and cannot deadlock). One index probe
# of (source_agency, source_ref) per ref, whatever the statistics say: the LIMIT keeps the
# planner from flattening the lateral subquery, and without that a freshly filled, not yet
# analysed table was read in full (all the agency's records, filtered by the array).
_PG_EXISTING = sa.text(
    """
    SELECT r.id, r.source_ref, r.content_hash, r.version, r.person_id, r.nik_index
      FROM unnest(CAST(:refs AS text[])) AS x(ref)
     CROSS JOIN LATERAL (
           SELECT id, source_ref, content_hash, version, person_id, nik_index FROM returnee
            WHERE source_agency = :agency AND source_ref = x.ref
            LIMIT 1
              FOR UPDATE
     ) AS r
    """
)


def _one_of(session: AsyncSession, column: Any, values: list[str]) -> sa.ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL as ``= ANY(:array)``, one parameter whatever the
    count (a statement of a hundred placeholders is parsed again on every call)."""
    if session.bind.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(sa.String)))
    return column.in_(values)


async def _persons_by_nik(session: AsyncSession, indexes: set[str]) -> dict[str, uuid.UUID]:
    if not indexes:
        return {}
    rows = await session.execute(
        sa.select(Person.id, Person.nik_index).where(_one_of(session, col(Person.nik_index), sorted(indexes)))
    )
    return {r.nik_index: r.id for r in rows}


async def _ensure_persons(
    session: AsyncSession, nik_indexes: set[str], anonymous: int, now: datetime
) -> tuple[dict[str, uuid.UUID], list[uuid.UUID]]:
    """Persons for these NIK indexes (found or created) and ``anonymous`` new persons without
    one. A person created at the same moment by a concurrent batch is found, not duplicated."""
    fresh = [uuid.uuid4() for _ in range(anonymous)]
    anon_rows = [{"id": pid, "nik_index": None, "created_at": now} for pid in fresh]
    if session.bind.dialect.name == "postgresql":
        # One statement: new persons inserted, existing ones (whoever created them) returned.
        rows = [{"id": uuid.uuid4(), "nik_index": idx, "created_at": now} for idx in sorted(nik_indexes)] + anon_rows
        by_nik = {}
        if rows:
            result = await execute_text(session, _PG_PERSONS, {"rows": orjson.dumps(rows).decode()})
            by_nik = {r.nik_index: r.id for r in result if r.nik_index is not None}
        return by_nik, fresh
    by_nik = await _persons_by_nik(session, nik_indexes)
    missing = sorted(nik_indexes - by_nik.keys())
    rows = [{"id": uuid.uuid4(), "nik_index": idx, "created_at": now} for idx in missing] + anon_rows
    if rows:
        await bulk.insert_rows(session, Person.__table__, rows, on_conflict_do_nothing=["nik_index"])
        if missing:  # a concurrent batch may have created some first: theirs is the person
            by_nik.update(await _persons_by_nik(session, set(missing)))
    return by_nik, fresh


async def upsert_batch(session: AsyncSession, agency: str, records: Sequence[Any]) -> BatchOutcome:
    """Create or update ``agency``'s records keyed by their ``source_ref``.

    Each record is validated on its own; a bad one is ``rejected`` with its field errors and
    does not stop the others, nor does a later record repeating a ``source_ref`` of the same
    batch. Emits ``returnee.created`` / ``returnee.updated`` (no personal data) and records
    one audit entry naming every record written. Never commits.
    """
    now = clock.now()
    context = {"today": now.date()}  # one clock reading for the whole batch's date checks
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
            item = ReturneeIn.model_validate(raw, context=context)
        except ValidationError as exc:
            item = None
            res["errors"] = _errors(exc)
        if ref is not None:
            first = first_index.setdefault(ref, index)
            if first != index:
                item = None
                res["errors"].insert(0, {"field": "source_ref",
                                         "message": f"duplicate of record {first} in this batch ('{ref}')"})
        if item is not None:
            res["warnings"] = item.warnings(context["today"])
            accepted.append((res, item))

    table = Returnee.__table__
    existing: dict[str, Any] = {}
    if accepted:
        refs = sorted({it.source_ref for _, it in accepted})
        if session.bind.dialect.name == "postgresql":
            rows = await execute_text(session, _PG_EXISTING, {"agency": agency, "refs": refs})
        else:
            rows = await session.execute(
                sa.select(table.c.id, table.c.source_ref, table.c.content_hash, table.c.version, table.c.person_id,
                          table.c.nik_index)
                .where(table.c.source_agency == agency, table.c.source_ref.in_(refs))
            )
        existing = {r.source_ref: r for r in rows}

    creates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    updates: list[tuple[dict[str, Any], dict[str, Any], Any]] = []
    keys = _Keys.of(unit_of(session).settings)
    for res, item in accepted:
        digest = content_hash(item, keys)
        old = existing.get(item.source_ref)
        if old is not None and old.content_hash == digest:
            res["status"], res["id"] = "unchanged", old.id
            continue
        row = _columns(item, digest, keys)
        if old is None:
            creates.append((res, row))
        else:
            updates.append((res, row, old))

    # Persons: the same NIK is the same person, wherever and by whomever it was pushed.
    nik_indexes = {row["nik_index"] for _, row in creates if row["nik_index"]}
    nik_indexes |= {row["nik_index"] for _, row, old in updates if row["nik_index"]
                    and row["nik_index"] != old.nik_index}
    anonymous = sum(1 for _, row in creates if not row["nik_index"])
    by_nik, fresh = await _ensure_persons(session, nik_indexes, anonymous, now)
    fresh_iter = iter(fresh)

    written: list[tuple[str, dict[str, Any]]] = []
    if creates:
        for res, row in creates:
            row["id"] = uuid.uuid4()
            row["person_id"] = by_nik[row["nik_index"]] if row["nik_index"] else next(fresh_iter)
            row.update(source_agency=agency, version=1, created_at=now, updated_at=now)
            res["status"], res["id"] = "created", row["id"]
            written.append(("returnee.created", row))
        try:
            await bulk.insert_rows(session, table, [row for _, row in creates])
        except sa.exc.IntegrityError:
            # Only a concurrent batch creating the same source_ref gets here (all else was
            # checked): the whole batch rolls back and the sender retries.
            raise Conflict("Another request is writing the same records; retry the batch") from None
    if updates:
        params = []
        for res, row, old in updates:
            if row["nik_index"] and row["nik_index"] != old.nik_index:
                row["person_id"] = by_nik[row["nik_index"]]
            else:
                row["person_id"] = old.person_id
            row.update(b_id=old.id, version=old.version + 1, updated_at=now)
            res["status"], res["id"] = "updated", old.id
            params.append(row)
            written.append(("returnee.updated", {**row, "id": old.id}))
        await session.execute(
            sa.update(table).where(table.c.id == sa.bindparam("b_id")),
            params,
            execution_options={"synchronize_session": False},
        )

    touched: dict[str, list[uuid.UUID]] = {}
    for kind, row in written:
        touched.setdefault(row["origin_district"], []).append(row["id"])
        outbox.emit(
            session,
            kind,
            {"id": str(row["id"]), "source_ref": row["source_ref"], "origin_district": row["origin_district"],
             "trafficking_status": row["trafficking_status"]},
            region=row["origin_district"],
            audience=[agency],
        )
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "updated", "unchanged", "rejected")}
    audit.record(
        session,
        "returnee.batch",
        resource_type=RESOURCE,
        subjects=[(RESOURCE, row["id"]) for _, row in written],
        source_agency=agency,
        records=len(results),
        **counts,
    )
    return BatchOutcome(results, touched, counts)


async def notify_districts(
    session: AsyncSession, caller: Caller, touched: dict[str, list[uuid.UUID]]
) -> list[dict[str, Any]]:
    """``POST /v1/returnees/batch?notify=true``: one deportation notice per district touched
    (``district -> returnee ids created or updated``), returned as the reply's ``notices``."""
    raised = await notices.raise_for_batch(session, caller, touched)
    return [NoticeSummary.model_validate(n).model_dump(mode="json") for n in raised]


# --- who may see what ------------------------------------------------------------------------


def visible(caller: Caller) -> sa.ColumnElement[bool]:
    """SQL condition: the returnee is one ``caller`` may see. The one place that decides it."""
    return sa.or_(
        in_jurisdiction(caller, col(Returnee.origin_district)),
        in_jurisdiction(caller, col(Returnee.origin_subdistrict)),
        col(Returnee.source_agency) == caller.agency,
    )


async def get_visible(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Returnee:
    """The returnee ``id`` if ``caller`` may see it, else :class:`NotFound` (as if absent).
    Does not audit: callers that show the record record the read (see :func:`read`)."""
    obj = (await session.exec(select(Returnee).where(Returnee.id == id, visible(caller)))).first()
    if obj is None:
        raise NotFound("No such returnee")
    return obj


async def get_readable(session: AsyncSession, caller: Caller, id: uuid.UUID) -> tuple[Returnee, Referral | None]:
    """:func:`get_visible`, or, outside the caller's jurisdiction, the returnee of an open
    referral addressed to the caller's agency: that referral is then the purpose of the read."""
    try:
        return await get_visible(session, caller, id), None
    except NotFound:
        referral = await referrals.open_referral_for(session, caller.agency, id)
        if referral is None:
            raise
    obj = await session.get(Returnee, id)
    if obj is None:  # pragma: no cover - the referral's foreign key keeps it
        raise NotFound("No such returnee")
    return obj, referral


# --- reading ---------------------------------------------------------------------------------


def public(r: Returnee, *, pii: bool, data_key: bytes) -> dict[str, Any]:
    """A returnee as the API shows it: NIK, passport and phone decrypted when ``pii``, masked
    otherwise."""
    out: dict[str, Any] = {
        "id": r.id, "person_id": r.person_id, "source_agency": r.source_agency, "version": r.version,
        **{name: getattr(r, name) for name in PLAIN_FIELDS},
        "created_at": r.created_at, "updated_at": r.updated_at, "pii_masked": not pii,
    }
    for fname, prefix, enc_ctx, _ in PII_FIELDS:
        enc = getattr(r, f"{prefix}_enc")
        value = None if enc is None else crypto.decrypt(enc, context=enc_ctx, key=data_key)
        out[fname] = value if pii or value is None else crypto.mask(value)
    return out


async def read(session: AsyncSession, caller: Caller, id: uuid.UUID) -> tuple[Returnee, dict[str, Any]]:
    """One visible returnee, shaped for ``caller`` and audited."""
    r, referral = await get_readable(session, caller, id)
    pii = caller.has("pii:read")
    subjects: list[tuple[str, Any]] = [("person", r.person_id)]
    if referral is not None:
        subjects.append(("referral", referral.id))
    audit.record(session, "returnee.read", resource_type=RESOURCE, resource_id=r.id, subjects=subjects, pii=pii,
                 purpose=None if referral is None else f"referral:{referral.id}")
    return r, public(r, pii=pii, data_key=unit_of(session).settings.data_key_bytes)


@dataclass
class ListFilter:
    district: str | None = None
    returned_from: date | None = None
    returned_to: date | None = None
    trafficking_status: str | None = None
    updated_since: datetime | None = None


async def list_visible(
    session: AsyncSession,
    caller: Caller,
    filters: ListFilter,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> tuple[list[dict[str, Any]], tuple[datetime, uuid.UUID] | None]:
    """Up to ``limit`` visible returnees in ``(updated_at, id)`` order after the keyset
    ``after``, and the keyset to continue from (``None`` at the end); audited."""
    stmt = select(Returnee).where(visible(caller))
    f = filters
    if f.district:
        d = f.district
        stmt = stmt.where(sa.or_(col(Returnee.origin_district) == d,
                                 col(Returnee.origin_district).startswith(d + ".", autoescape=True),
                                 col(Returnee.origin_subdistrict) == d))
    if f.returned_from:
        stmt = stmt.where(col(Returnee.return_date) >= f.returned_from)
    if f.returned_to:
        stmt = stmt.where(col(Returnee.return_date) <= f.returned_to)
    if f.trafficking_status:
        stmt = stmt.where(col(Returnee.trafficking_status) == f.trafficking_status)
    if f.updated_since:
        stmt = stmt.where(col(Returnee.updated_at) >= f.updated_since)
    if after is not None:
        at, last_id = after
        stmt = stmt.where(sa.or_(col(Returnee.updated_at) > at,
                                 sa.and_(col(Returnee.updated_at) == at, col(Returnee.id) > last_id)))
    stmt = stmt.order_by(col(Returnee.updated_at), col(Returnee.id)).limit(limit + 1)
    rows = list((await session.exec(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    pii = caller.has("pii:read")
    audit.record(session, "returnee.list", resource_type=RESOURCE,
                 subjects=[(RESOURCE, r.id) for r in rows], pii=pii, count=len(rows))
    next_after = (rows[-1].updated_at, rows[-1].id) if more else None
    key = unit_of(session).settings.data_key_bytes
    return [public(r, pii=pii, data_key=key) for r in rows], next_after
