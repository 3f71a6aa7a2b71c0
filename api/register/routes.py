"""``/v1/register``: departures of migrant workers and the district's person view of them."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.core.unit import unit_of
from api.http import auth, idempotency
from api.http.jsonbody import OrjsonRoute
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep, services
from api.register import service
from api.register.repository import PersonFilter
from api.register.schemas import (
    PERSONS,
    CountsReply,
    DepartureBatchIn,
    DepartureBatchOut,
    PersonDetail,
    PersonList,
)
from api.stats import service as stats
from api.stats.routes import Threshold
from models import RegisterStatus

router = APIRouter(prefix="/v1/register", tags=["register"], route_class=OrjsonRoute)


def _json(body: object) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")


@router.post("/departures/batch", response_model=DepartureBatchOut, name="departure.batch",
             dependencies=[idempotency.KEY])
async def push_departures(caller: auth.RegisterWrite, session: SessionDep, request: Request,
                          body: DepartureBatchIn) -> Response:
    """Create or update up to 1,000 of the caller's departure records, keyed by its ``source_ref``:
    BP3MI's placements, or a village or district office's records of its people (``procedural``
    or not). Each record gets its own result; a record whose origin lies outside where the caller
    may write is rejected alone. A record with an NIK is linked to the person of that NIK (the
    returnees' ``person_id``). Takes an optional ``Idempotency-Key``."""
    idem = await idempotency.begin(session, caller, request)
    if idem.replay is not None:
        return idem.replay
    results = await service.upsert_departures(session, caller, body.records)
    encoded = orjson.dumps({"results": results}, option=orjson.OPT_UTC_Z)
    idem.remember_encoded(session, 200, encoded)
    return Response(encoded, media_type="application/json")


@router.get("/persons", response_model=PersonList, name="register.person.list")
async def list_persons(
    caller: auth.RegisterRead,
    session: SessionDep,
    region: Annotated[str | None, Query(max_length=20, description="origin: a district, sub-district or village code")] = None,
    status: RegisterStatus | None = None,
    repeat_return: bool | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The register's persons of the caller's jurisdiction (by the origin of their latest record):
    who left, who is abroad, who came back or was deported, how many times. The NIK is shown only
    with ``pii:read``."""
    settings = unit_of(session).settings
    items, nxt = await service.list_persons(session, caller, PersonFilter(region, status, repeat_return),
                                            after=PERSONS.open(settings, cursor), limit=limit)
    return _json({"items": items, "next_cursor": PERSONS.seal(settings, nxt)})


@router.get("/persons/{person_id}", response_model=PersonDetail, name="register.person.get")
async def get_person(caller: auth.RegisterRead, session: SessionDep, person_id: uuid.UUID) -> Response:
    """One person of the caller's view (404 otherwise), with the departure and returnee records
    behind it that the caller may read."""
    return _json(await service.read_person(session, caller, person_id))


@router.get("/counts", response_model=CountsReply, name="register.counts")
async def counts(
    caller: auth.RegisterCounts,
    session: SessionDep,
    request: Request,
    district: Annotated[str, Query(max_length=5, pattern=r"^[0-9]{2}\.[0-9]{2}$", description="district code, `61.07`")],
    by: Literal["subdistrict", "village"] = "subdistrict",
    threshold: Threshold = None,
) -> Response:
    """Persons of the register of ``district`` (within the caller's jurisdiction) by origin
    sub-district or village: all of them (`persons`), those who ever left, are abroad, returned,
    were deported, returned more than once. **Every figure is protected as the statistics are**:
    rounded to a multiple of `rounding_base` by its cell key, counts from 1 to `threshold` - 1
    suppressed (`null`)."""
    limit = stats.effective_threshold(services(request).settings.suppression_threshold, threshold)
    return _json(await service.counts(session, caller, district, by, limit))
