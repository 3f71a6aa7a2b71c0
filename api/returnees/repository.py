"""Returnee queries, in one place: who may read which record, and the batch writer's statements.

:func:`readable` is THE rule for reading returnees: a record is readable by callers whose
jurisdiction covers its origin district or its origin sub-district, by the agency that
pushed it, and by the agencies that see the whole province of that agency (a returnee of
another province taken in by BP3MI Kalimantan Barat: :func:`api.core.access.taken_in`). Every query that shows returnees to a caller starts from it, here and for the other
resources (referrals, notices and the demo loaders call the functions below; they do not write
the rule again). ``tests/test_readable.py`` fails when a query of ``returnee`` is built anywhere
else.

Besides it, exactly these ways in, each keyed by something that already proved the access:

* :func:`referred`: the receiver of an open referral reads that referral's returnee, even
  outside its jurisdiction (the referral, found with :mod:`api.referrals.repository`, is the key
  and the purpose of the read);
* :func:`listed_on`: the returnees listed on a notice, for whoever may see the notice
  (:func:`api.notices.repository.readable`);
* the batch writer's own rows: :func:`existing_for_batch` reads the sender's records by
  ``(source_agency, source_ref)``, to compare them with the batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core import access, bulk, changes, ids, pagination
from api.core.access import in_jurisdiction, taken_in
from api.core.context import Caller
from api.core.db import execute_text
from api.core.errors import NotFound
from api.core.pagination import Position, Slice
from api.core.unit import unit_of
from models import NoticeReturnee, Person, Referral, Returnee

_TABLE: sa.Table = Returnee.__table__  # type: ignore[attr-defined]


# --- the readable set ------------------------------------------------------------------------


def readable(caller: Caller) -> SelectOfScalar[Returnee]:
    """The returnees ``caller`` may read. The one place that decides it."""
    return select(Returnee).where(
        sa.or_(
            in_jurisdiction(caller, col(Returnee.origin_district)),
            in_jurisdiction(caller, col(Returnee.origin_subdistrict)),
            col(Returnee.source_agency) == caller.agency,
            taken_in(caller, col(Returnee.source_agency)),
        )
    )


async def shown(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Returnee:
    """The returnee ``id`` if ``caller`` may read it, else :class:`NotFound` (as if absent): a
    copy not in the session, to show (a write finds its records through the session)."""
    return await access.shown_by_id(session, caller, readable, id, "returnee")



async def find_readable(session: AsyncSession, caller: Caller, id: uuid.UUID) -> Returnee | None:
    """The returnee ``id`` if ``caller`` may read it, else ``None`` (for callers that answer
    something else than a 404, e.g. a referral's 422)."""
    return (await session.exec(readable(caller).where(col(Returnee.id) == id))).first()


@dataclass
class ListFilter:
    district: str | None = None
    returned_from: date | None = None
    returned_to: date | None = None
    trafficking_status: str | None = None
    updated_since: datetime | None = None
    sort: str = "updated_at"  # or "changes": by change_pos, the commit order (api.core.changes)


async def readable_page(
    session: AsyncSession,
    caller: Caller,
    f: ListFilter,
    *,
    after: Position | None,
    limit: int,
) -> Slice[Returnee]:
    """Up to ``limit`` readable returnees matching ``f`` in ``(updated_at, id)`` order (or, with
    ``f.sort == "changes"``, ``change_pos`` order) after the position ``after``."""
    stmt = readable(caller)
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
    keys = [col(Returnee.change_pos)] if f.sort == "changes" else [col(Returnee.updated_at), col(Returnee.id)]
    return await pagination.read_page(session, stmt, keys, after, limit)


async def readable_origins(session: AsyncSession, caller: Caller, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """``id -> origin district`` of those of ``ids`` that ``caller`` may read."""
    stmt = readable(caller).with_only_columns(col(Returnee.id), col(Returnee.origin_district)).where(
        col(Returnee.id).in_(ids)
    )
    return {r[0]: r[1] for r in (await session.execute(stmt)).all()}


async def readable_arrivals(
    session: AsyncSession, caller: Caller, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, date, str | None]]:
    """``id -> (origin district, return date, entry point)`` of those of ``ids`` that ``caller``
    may read (a notice's arrival details), a thousand ids per statement."""
    out: dict[uuid.UUID, tuple[str, date, str | None]] = {}
    for i in range(0, len(ids), 1000):
        stmt = readable(caller).with_only_columns(
            col(Returnee.id), col(Returnee.origin_district), col(Returnee.return_date), col(Returnee.entry_point)
        ).where(col(Returnee.id).in_(ids[i : i + 1000]))
        out.update({r[0]: (r[1], r[2], r[3]) for r in (await session.execute(stmt)).all()})
    return out


async def recent_readable(session: AsyncSession, caller: Caller, limit: int) -> list[Returnee]:
    """The ``limit`` readable returnees that returned last (the demo referrals are about them)."""
    stmt = readable(caller).order_by(col(Returnee.return_date).desc(), col(Returnee.id)).limit(limit)
    return list((await session.exec(stmt)).all())


async def readable_not_on_a_notice(session: AsyncSession, caller: Caller) -> list[tuple[uuid.UUID, str, date]]:
    """``(id, origin district, return date)`` of the readable returnees that no notice lists
    yet, oldest return first (the demo notices are raised for them)."""
    on_notice = sa.select(col(NoticeReturnee.returnee_id)).where(col(NoticeReturnee.returnee_id) == col(Returnee.id))
    stmt = (
        readable(caller)
        .with_only_columns(col(Returnee.id), col(Returnee.origin_district), col(Returnee.return_date))
        .where(~on_notice.exists())
        .order_by(col(Returnee.return_date), col(Returnee.id))
    )
    return [(r[0], r[1], r[2]) for r in (await session.execute(stmt)).all()]


async def readable_of_person(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> list[Returnee]:
    """The readable returnee records of one person, oldest return first (the register's view)."""
    stmt = readable(caller).where(col(Returnee.person_id) == person_id).order_by(
        col(Returnee.return_date), col(Returnee.id))
    return list((await session.exec(stmt)).all())


# --- the other ways in -----------------------------------------------------------------------


async def referred(session: AsyncSession, referral: Referral) -> Returnee:
    """The returnee of ``referral``: the receiver of an open referral reads it whatever its
    jurisdiction. ``referral`` must come from :mod:`api.referrals.repository`'s open-referral
    lookups for the caller; it is the access and the purpose of the read."""
    returnee = None if referral.returnee_id is None else await session.get(Returnee, referral.returnee_id)
    if returnee is None:  # pragma: no cover - the referral's foreign key keeps it
        raise NotFound("No such returnee")
    return returnee


@dataclass(frozen=True, slots=True)
class Listed:
    """A returnee as a notice lists it: no identity numbers."""

    id: uuid.UUID
    name: str
    sex: str
    origin_subdistrict: str | None
    return_type: str
    return_date: date
    trafficking_status: str


async def listed_on(session: AsyncSession, notice_id: uuid.UUID) -> list[Listed]:
    """The returnees a notice lists, by return date and name. For callers who may see the
    notice (:func:`api.notices.repository.get_readable`): the notice is their access."""
    rows = await session.execute(
        sa.select(
            col(Returnee.id), col(Returnee.full_name), col(Returnee.sex), col(Returnee.origin_subdistrict),
            col(Returnee.return_type), col(Returnee.return_date), col(Returnee.trafficking_status),
        )
        .join(NoticeReturnee, col(NoticeReturnee.returnee_id) == col(Returnee.id))
        .where(col(NoticeReturnee.notice_id) == notice_id)
        .order_by(col(Returnee.return_date), col(Returnee.full_name), col(Returnee.id))
    )
    return [Listed(*r) for r in rows.all()]


@dataclass(frozen=True, slots=True)
class Return:
    """What the register sums of a returnee record (:mod:`api.register.service`)."""

    id: uuid.UUID
    person_id: uuid.UUID
    full_name: str
    sex: str
    birth_date: date | None
    nik_enc: str | None
    origin_district: str
    origin_subdistrict: str | None
    return_date: date
    return_type: str
    updated_at: datetime


async def returns_of_persons(session: AsyncSession, person_ids: Sequence[uuid.UUID]) -> list[Return]:
    """Every returnee record of these persons, for the writer that refreshes their register rows
    just after writing their records (:func:`api.register.service.refresh`); never shown as
    records, only summed into the register's person view (itself read by jurisdiction)."""
    out: list[Return] = []
    ids = sorted(set(person_ids))
    t = _TABLE.c
    for i in range(0, len(ids), 1000):
        rows = await session.execute(
            sa.select(t.id, t.person_id, t.full_name, t.sex, t.birth_date, t.nik_enc, t.origin_district,
                      t.origin_subdistrict, t.return_date, t.return_type, t.updated_at)
            .where(t.person_id.in_(ids[i : i + 1000])))
        out.extend(Return(*r) for r in rows.all())
    return out


# --- the batch writer ------------------------------------------------------------------------
#
# A whole batch costs a fixed number of statements, whatever its size: the existing rows, the
# persons, one INSERT, one executemany UPDATE. On PostgreSQL the hot ones are compiled once
# (api.core.db.execute_text).

# The sender's existing records of a batch, locked (two batches updating the same record queue
# up; the refs are sorted, so they lock in the same order and cannot deadlock). One index probe
# of (source_agency, source_ref) per ref, whatever the statistics say: the LIMIT keeps the
# planner from flattening the lateral subquery, and without that a freshly filled, not yet
# analysed table was read in full (all the agency's records, filtered by the array).
_PG_EXISTING = sa.text(
    """
    SELECT r.id, r.source_ref, r.content_hash, r.version, r.person_id, r.nik_index, r.full_name, r.birth_date
      FROM unnest(CAST(:refs AS text[])) AS x(ref)
     CROSS JOIN LATERAL (
           SELECT id, source_ref, content_hash, version, person_id, nik_index, full_name, birth_date FROM returnee
            WHERE source_agency = :agency AND source_ref = x.ref
            LIMIT 1
              FOR UPDATE
     ) AS r
    """
)

_PG_PERSONS = sa.text(
    """
    INSERT INTO person (id, nik_index, created_at)
    SELECT id, nik_index, created_at FROM json_populate_recordset(NULL::person, :rows)
    ON CONFLICT (nik_index) DO UPDATE SET created_at = person.created_at
    RETURNING id, nik_index
    """
)
# The no-op update returns the person found. It sets a column that is in no unique index, so
# the row lock it takes is FOR NO KEY UPDATE, which does not block a foreign key's check (FOR KEY
# SHARE: a returnee or register row naming the person): setting ``nik_index`` took FOR UPDATE,
# which did, so a batch writing its persons before the list's head would block the batch holding
# the head (and then wait for it: a deadlock).


async def existing_for_batch(session: AsyncSession, agency: str, refs: Sequence[str]) -> dict[str, Any]:
    """``source_ref -> (id, source_ref, content_hash, version, person_id, nik_index, full_name,
    birth_date)`` of ``agency``'s own records among ``refs`` (sorted), locked on PostgreSQL. The
    writer's read: keys, the content hash and the version, and what says whose record it is
    (the NIK's blind index, name and birth date), so that a ``source_ref`` reused for another
    person is refused instead of overwriting the record; nothing else of its content."""
    if not refs:
        return {}
    rows: Any
    if _on_postgresql(session):
        rows = await execute_text(session, _PG_EXISTING, {"agency": agency, "refs": list(refs)})
    else:
        t = _TABLE.c
        rows = await session.execute(
            sa.select(t.id, t.source_ref, t.content_hash, t.version, t.person_id, t.nik_index, t.full_name,
                      t.birth_date)
            .where(t.source_agency == agency, t.source_ref.in_(refs))
        )
    return {r.source_ref: r for r in rows}


def _on_postgresql(session: AsyncSession) -> bool:
    bind = session.bind
    return bind is not None and bind.dialect.name == "postgresql"


def _one_of(session: AsyncSession, column: Any, values: list[str]) -> sa.ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL as ``= ANY(:array)``, one parameter whatever the
    count (a statement of a hundred placeholders is parsed again on every call)."""
    if _on_postgresql(session):
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(sa.String)))
    return column.in_(values)


async def _persons_by_nik(session: AsyncSession, indexes: Iterable[str]) -> dict[str, uuid.UUID]:
    wanted = sorted(indexes)
    if not wanted:
        return {}
    rows = await session.execute(
        sa.select(col(Person.id), col(Person.nik_index)).where(_one_of(session, col(Person.nik_index), wanted))
    )
    return {r.nik_index: r.id for r in rows}


async def ensure_persons(
    session: AsyncSession, nik_indexes: set[str], anonymous: int, now: datetime
) -> tuple[dict[str, uuid.UUID], list[uuid.UUID], set[uuid.UUID]]:
    """Persons for these NIK indexes (found or created) and ``anonymous`` new persons without
    one: ``(person by NIK index, the anonymous ones, every person this call created)``. A person
    created at the same moment by a concurrent batch is found, not duplicated (and is not among
    those this call created)."""
    fresh = ids.new_ids(anonymous)
    anon_rows = [{"id": pid, "nik_index": None, "created_at": now} for pid in fresh]
    if _on_postgresql(session):
        # One statement: new persons inserted, existing ones (whoever created them) returned.
        rows = [{"id": pid, "nik_index": idx, "created_at": now}
                for pid, idx in zip(ids.new_ids(len(nik_indexes)), sorted(nik_indexes), strict=True)] + anon_rows
        by_nik = {}
        if rows:
            result = await execute_text(session, _PG_PERSONS, {"rows": orjson.dumps(rows).decode()})
            by_nik = {r.nik_index: r.id for r in result if r.nik_index is not None}
        # an id of ours came back: the row is ours (a person found has the id it was made with)
        made = {r["id"] for r in rows}
        return by_nik, fresh, {pid for pid in by_nik.values() if pid in made} | set(fresh)
    by_nik = await _persons_by_nik(session, nik_indexes)
    missing = sorted(nik_indexes - by_nik.keys())
    rows = [{"id": uuid.uuid4(), "nik_index": idx, "created_at": now} for idx in missing] + anon_rows
    if rows:
        await bulk.insert_rows(session, Person.__table__, rows, on_conflict_do_nothing=["nik_index"])  # type: ignore[attr-defined]
        if missing:  # a concurrent batch may have created some first: theirs is the person
            by_nik.update(await _persons_by_nik(session, missing))
    made = {r["id"] for r in rows}
    return by_nik, fresh, {pid for pid in by_nik.values() if pid in made} | set(fresh)


async def insert_rows(session: AsyncSession, rows: list[dict[str, Any]], *, at_commit: bool = False) -> None:
    """One INSERT of new records (column values as :mod:`api.core.bulk` takes them), numbered
    in the list's commit order as they go in (:func:`api.core.changes.insert_numbered`;
    ``at_commit``: sent with the unit's COMMIT). Raises :class:`sqlalchemy.exc.IntegrityError`
    when a concurrent batch created a same ``source_ref`` first (with ``at_commit`` the commit
    raises it, answered 409 as well: :mod:`api.core.unit`)."""
    await changes.insert_numbered(session, _TABLE, rows, unit_of(session).changed, at_commit=at_commit)


async def take_list(session: AsyncSession) -> None:
    """Hold the returnee list's head from now to the commit (:func:`api.core.changes.take_early`):
    a batch that only updates records takes it after its persons, before the records and the
    register's rows, so two batches never hold rows the other waits for."""
    await changes.take_early(session, _TABLE)


async def update_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """One executemany UPDATE of changed records, each keyed by its ``b_id``."""
    await session.execute(
        sa.update(_TABLE).where(_TABLE.c.id == sa.bindparam("b_id")),
        rows,
        execution_options={"synchronize_session": False},
    )
    unit_of(session).changed(_TABLE, (r["b_id"] for r in rows))
