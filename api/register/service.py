"""The register of migrant workers: departures, the person view, its counts.

Departures are pushed in batches keyed by ``source_ref`` (BP3MI from its placement data, or a
village or district office for its own people, procedural or not), each record validated on its
own and rejected alone when its origin lies outside where the writer may write
(:func:`api.core.access.may_write`). A departure's NIK finds its person exactly as a returnee's
does (:func:`api.returnees.repository.ensure_persons`: one person per NIK blind index, wherever
and by whomever pushed), so a person's departures and returns are linked by ``person_id``.

The person view (:class:`models.RegisterPerson`) is summed from a person's records by
:func:`summarise` and refreshed by every writer of either kind of record (:func:`refresh`: the
departure batch here, the returnee batch in :mod:`api.returnees.service`). A person whose
returns reach two is flagged ``repeat_return`` and the event ``register.repeat_return`` is
emitted once, so the district can offer training or a legal placement before they leave
irregularly again.

Counts by sub-district or village are published through the statistics' one rule
(:func:`api.stats.service.protect`: cell-key rounding to base 5, counts 1 to 4 suppressed),
each person's record key being ``person|<person id hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import access, audit, clock, crypto, outbox
from api.core.context import Caller
from api.core.errors import Conflict, record_errors
from api.core.pagination import Position
from api.core.scopes import Scope
from api.core.unit import unit_of
from api.register import repository
from api.register.repository import PersonFilter
from api.register.schemas import DepartureIn
from api.returnees import repository as returnees
from api.stats import service as stats
from models import Departure, DepartureBase, RegisterPerson, RegisterStatus
from models.regions import covers, regions

RESOURCE = "departure"
NIK_CONTEXT = "departure.nik"
PLAIN_FIELDS = tuple(DepartureBase.model_fields)


# --- the person view -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Record:
    """A departure or a return, as the register sums it."""

    day: date
    order: int  # 0 a departure, 1 a return: on the same day, the return is the later
    updated_at: datetime
    id: uuid.UUID
    full_name: str
    sex: str
    birth_date: date | None
    nik_enc: str | None
    nik_context: str
    district: str
    subdistrict: str | None
    village: str | None
    return_type: str | None = None
    procedural: bool = False


def summarise(person_id: uuid.UUID, records: Iterable[_Record], now: datetime) -> dict[str, Any]:
    """The register row of one person from all their records: identity and origin of the latest
    (the village the latest one known within that origin), the counts, the last dates, the
    status (``abroad`` when the latest is a departure, else ``deported`` or ``returned`` by its
    type) and ``repeat_return`` (two returns or more)."""
    ordered = sorted(records, key=lambda r: (r.day, r.order, r.updated_at, r.id))
    latest = ordered[-1]
    departures = [r for r in ordered if r.order == 0]
    returns = [r for r in ordered if r.order == 1]
    with_nik = [r for r in ordered if r.nik_enc is not None]
    village = next((r.village for r in reversed(ordered) if r.village is not None
                    and r.district == latest.district and covers(latest.subdistrict or latest.district, r.village)),
                   None)
    if latest.order == 0:
        status = RegisterStatus.abroad
    else:
        status = RegisterStatus.deported if latest.return_type == "deported" else RegisterStatus.returned
    return {
        "person_id": person_id, "full_name": latest.full_name, "sex": latest.sex, "birth_date": latest.birth_date,
        "nik_enc": with_nik[-1].nik_enc if with_nik else None,
        "nik_context": with_nik[-1].nik_context if with_nik else None,
        "origin_district": latest.district, "origin_subdistrict": latest.subdistrict, "origin_village": village,
        "departures": len(departures), "procedural_departures": sum(1 for r in departures if r.procedural),
        "returns": len(returns), "deportations": sum(1 for r in returns if r.return_type == "deported"),
        "last_departure": departures[-1].day if departures else None,
        "last_return": returns[-1].day if returns else None,
        "last_return_type": returns[-1].return_type if returns else None,
        "status": status.value, "repeat_return": len(returns) >= 2, "updated_at": now,
    }


def return_record(r: Any) -> _Record:
    """A returnee record (a :class:`api.returnees.repository.Return`, or a row the returnee
    writer holds: same names) as the register sums it."""
    def get(name: str) -> Any:
        return r[name] if isinstance(r, dict) else getattr(r, name)

    return _Record(get("return_date"), 1, get("updated_at"), get("id"), get("full_name"), str(get("sex")),
                   get("birth_date"), get("nik_enc"), "returnee.nik", get("origin_district"),
                   get("origin_subdistrict"), None, return_type=str(get("return_type")))


async def refresh(session: AsyncSession, person_ids: Iterable[uuid.UUID],
                  created: Mapping[uuid.UUID, list[_Record]] | None = None, *, at_commit: bool = False) -> None:
    """Sum again the register rows of these persons (just after their records were written);
    emit ``register.repeat_return`` for each person flagged for the first time. ``created``:
    persons this unit created, with their records (all of them: nobody else can have written
    records of a person before it exists), which need no reading back. ``at_commit``: the rows
    written with the unit's COMMIT (:meth:`api.core.unit.Unit.write_at_commit`)."""
    ids = sorted(set(person_ids))
    if not ids:
        return
    records: dict[uuid.UUID, list[_Record]] = {pid: list(recs) for pid, recs in (created or {}).items() if recs}
    stored = [pid for pid in ids if pid not in records]
    for d in await repository.departures_of_persons(session, stored) if stored else []:
        records.setdefault(d.person_id, []).append(_Record(
            d.departure_date, 0, d.updated_at, d.id, d.full_name, str(d.sex), d.birth_date, d.nik_enc, NIK_CONTEXT,
            d.origin_district, d.origin_subdistrict, d.origin_village, procedural=d.procedural))
    for r in await returnees.returns_of_persons(session, stored) if stored else []:
        records.setdefault(r.person_id, []).append(return_record(r))
    flagged = await repository.flags_of(session, stored) if stored else {}
    now = clock.now()
    rows = [summarise(pid, recs, now) for pid, recs in sorted(records.items())]
    await repository.replace_persons(session, ids, rows, at_commit=at_commit)
    for row in rows:
        if row["repeat_return"] and not flagged.get(row["person_id"], False):
            outbox.emit(session, "register.repeat_return",
                        {"person_id": str(row["person_id"]), "origin_district": row["origin_district"],
                         "origin_subdistrict": row["origin_subdistrict"], "returns": row["returns"],
                         "last_return_type": row["last_return_type"]},
                        region=row["origin_subdistrict"] or row["origin_district"])


# --- the departure batch ---------------------------------------------------------------------


def _content_hash(item: DepartureIn, index_key: bytes) -> str:
    mac = hmac.new(index_key, b"departure\x00", hashlib.sha256)
    mac.update(orjson.dumps(item.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS))
    return mac.hexdigest()


def _validate(records: Sequence[Any], today: date, writer: Caller) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], DepartureIn]]]:
    results: list[dict[str, Any]] = []
    accepted: list[tuple[dict[str, Any], DepartureIn]] = []
    first: dict[str, int] = {}
    for index, raw in enumerate(records):
        ref = raw.get("source_ref") if isinstance(raw, dict) else None
        ref = ref.strip() if isinstance(ref, str) and ref.strip() else None
        res: dict[str, Any] = {"index": index, "source_ref": ref, "id": None, "person_id": None,
                               "status": "rejected", "errors": []}
        results.append(res)
        item: DepartureIn | None
        try:
            item = DepartureIn.model_validate(raw, context={"today": today})
        except ValidationError as exc:
            item, res["errors"] = None, record_errors(exc)
        except ValueError as exc:  # a bidirectional control in a text (the before-check)
            item, res["errors"] = None, [{"field": "record", "message": str(exc)}]
        if ref is not None and first.setdefault(ref, index) != index:
            item = None
            res["errors"].insert(0, {"field": "source_ref",
                                     "message": f"duplicate of record {first[ref]} in this batch ('{ref}')"})
        if item is not None:
            origin = item.origin_subdistrict or item.origin_district
            if not access.may_write(writer, origin):
                within = covers(item.origin_district, access.writable_region(writer))
                res["errors"].append({"field": "origin_subdistrict" if within else "origin_district",
                                      "message": access.outside_message(writer, origin)})
                item = None
        if item is not None:
            accepted.append((res, item))
    return results, accepted


async def upsert_departures(session: AsyncSession, writer: Caller, records: Sequence[Any]) -> list[dict[str, Any]]:
    """Create or update the writer's agency's departure records keyed by ``source_ref``; per-record
    results. Links each to its person by NIK, refreshes the register rows of the persons touched,
    emits ``departure.created`` / ``departure.updated`` (no personal data), audits one entry
    naming every record written. An unchanged record is not written."""
    settings = unit_of(session).settings
    now = clock.now()
    results, accepted = _validate(records, now.date(), writer)
    existing = await repository.existing_departures(session, writer.agency, sorted({i.source_ref for _, i in accepted}))
    cipher = crypto.FieldCipher(data_key=settings.data_key_bytes, index_key=settings.index_key_bytes,
                                context=NIK_CONTEXT, index_context="nik")
    planned: list[tuple[dict[str, Any], DepartureIn, str, str | None, Departure | None]] = []
    for res, item in accepted:
        digest = _content_hash(item, settings.index_key_bytes)
        old = existing.get(item.source_ref)
        if old is not None and old.content_hash == digest:
            res.update(status="unchanged", id=old.id, person_id=old.person_id)
            continue
        planned.append((res, item, digest, cipher.blind_index(item.nik) if item.nik else None, old))
    wanted = {idx for _, _, _, idx, old in planned if idx and (old is None or old.nik_index != idx)}
    anonymous = sum(1 for _, _, _, idx, old in planned if idx is None and old is None)
    by_nik, fresh, _ = await returnees.ensure_persons(session, wanted, anonymous, now)
    fresh_iter = iter(fresh)
    touched: set[uuid.UUID] = set()
    written: list[tuple[str, Departure]] = []
    for res, item, digest, idx, old in planned:
        values = {name: getattr(item, name) for name in PLAIN_FIELDS}
        values.update(nik_enc=cipher.encrypt(item.nik) if item.nik else None, nik_index=idx, content_hash=digest)
        if old is None:
            person = by_nik[idx] if idx else next(fresh_iter)
            d = Departure(**values, id=uuid.uuid4(), source_agency=writer.agency, person_id=person,
                          created_at=now, updated_at=now)
            session.add(d)
            res["status"] = "created"
            written.append(("departure.created", d))
        else:
            touched.add(old.person_id)
            person = by_nik[idx] if idx and idx != old.nik_index else old.person_id
            for k, v in values.items():
                setattr(old, k, v)
            old.person_id, old.version, old.updated_at = person, old.version + 1, now
            d = old
            res["status"] = "updated"
            written.append(("departure.updated", d))
        res.update(id=d.id, person_id=d.person_id)
        touched.add(d.person_id)
    try:
        await session.flush()
    except sa.exc.IntegrityError:  # a concurrent batch created the same source_ref first
        raise Conflict("Another request is writing the same records; retry the batch") from None
    await refresh(session, touched)
    for kind, d in written:
        outbox.emit(session, kind, {"id": str(d.id), "source_ref": d.source_ref, "person_id": str(d.person_id),
                                    "origin_district": d.origin_district, "procedural": d.procedural},
                    region=d.origin_subdistrict or d.origin_district, audience=[writer.agency])
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "updated", "unchanged", "rejected")}
    audit.record(session, "departure.batch", resource_type=RESOURCE, subjects=[(RESOURCE, d.id) for _, d in written],
                 source_agency=writer.agency, records=len(results), created=counts["created"],
                 updated=counts["updated"], unchanged=counts["unchanged"], rejected=counts["rejected"])
    return results


# --- reading ---------------------------------------------------------------------------------


def public(p: RegisterPerson, *, pii: bool, data_key: bytes) -> dict[str, Any]:
    """A person as the API shows them: the NIK whole with ``pii:read``, else ``null`` beside
    ``nik_on_file`` (:func:`api.core.crypto.disclose`, as for returnees)."""
    nik, on_file = crypto.disclose(p.nik_enc, pii=pii, context=p.nik_context or NIK_CONTEXT, key=data_key)
    return {
        "person_id": p.person_id, "full_name": p.full_name, "sex": p.sex, "birth_date": p.birth_date,
        "nik": nik, "nik_on_file": on_file, "pii_masked": not pii,
        "origin_district": p.origin_district, "origin_subdistrict": p.origin_subdistrict,
        "origin_village": p.origin_village, "status": p.status, "departures": p.departures,
        "procedural_departures": p.procedural_departures, "returns": p.returns, "deportations": p.deportations,
        "last_departure": p.last_departure, "last_return": p.last_return, "last_return_type": p.last_return_type,
        "repeat_return": p.repeat_return, "updated_at": p.updated_at,
    }


async def list_persons(session: AsyncSession, caller: Caller, f: PersonFilter, *, after: Position | None,
                       limit: int) -> tuple[list[dict[str, Any]], Position | None]:
    page = await repository.readable_page(session, caller, f, after=after, limit=limit)
    pii = caller.has(Scope.pii_read)
    audit.record(session, "register.person.list", resource_type="person",
                 subjects=[("person", p.person_id) for p in page.items], pii=pii, count=len(page.items))
    key = unit_of(session).settings.data_key_bytes
    return [public(p, pii=pii, data_key=key) for p in page.items], page.next


async def read_person(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> dict[str, Any]:
    """One person of the caller's view (else a 404), with the departure and returnee records
    behind it that the caller may read; audited."""
    p = await repository.get_readable(session, caller, person_id)
    departures = await repository.departures_of_person(session, caller, person_id)
    returns = await returnees.readable_of_person(session, caller, person_id)
    pii = caller.has(Scope.pii_read)
    audit.record(session, "register.person.read", resource_type="person", resource_id=person_id,
                 subjects=[*((RESOURCE, d.id) for d in departures), *(("returnee", r.id) for r in returns)], pii=pii)
    out = public(p, pii=pii, data_key=unit_of(session).settings.data_key_bytes)
    out["departure_records"] = [
        {"id": d.id, "source_agency": d.source_agency, "source_ref": d.source_ref, "departure_date": d.departure_date,
         "procedural": d.procedural, "destination_country": d.destination_country,
         "destination_region": d.destination_region, "employer": d.employer, "sector": d.sector,
         "origin_village": d.origin_village} for d in departures]
    out["return_records"] = [
        {"id": r.id, "source_agency": r.source_agency, "return_date": r.return_date, "return_type": r.return_type,
         "returned_from_country": r.returned_from_country, "entry_point": r.entry_point} for r in returns]
    return out


async def counts(session: AsyncSession, caller: Caller, district: str, by: str, threshold: int) -> dict[str, Any]:
    """Persons of ``district`` in the caller's view by sub-district or village, every figure
    published by :func:`api.stats.service.protect` (rounded by cell key, small cells
    suppressed); audited with its parameters."""
    rows, base = await repository.count_rows(session, caller, district, by)
    table = stats.protect(rows, [by], threshold, base, extra=repository.COUNT_FLAGS)
    names = _region_names()
    for row in table.rows:
        code = row[by]
        row["persons"] = row.pop("count")
        row["name"] = names.get(code) if isinstance(code, str) else None
    audit.record(session, "register.counts", resource_type="stats", group_by=[by], district=district,
                 threshold=threshold, rounding_base=base)
    return {"by": by, "district": district, "threshold": threshold, "rounding_base": base, "rows": table.rows,
            "total": table.total}


def _region_names() -> dict[str, str]:
    return {code: r.name for code, r in regions().items()}
