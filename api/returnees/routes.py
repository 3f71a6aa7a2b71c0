from __future__ import annotations

import uuid
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.core.errors import Forbidden
from api.core.params import DAY_HELP, INSTANT_HELP, REGION_HELP, Day, Instant, Region, region_codes
from api.core.preconditions import etag
from api.core.scopes import Scope
from api.core.unit import unit_of
from api.http import auth, idempotency
from api.http.jsonbody import OrjsonRoute
from api.http.openapi import ETAG, enums
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep
from api.returnees import service
from api.returnees.schemas import RETURNEE_CHANGES, RETURNEES, BatchIn, BatchOut, ReturneeList, ReturneeOut
from models import TraffickingStatus

SORT_HELP = (
    "`updated_at` (default): by the time of the last change, which is the time its transaction began, "
    "so a change committed later can carry an earlier time. `changes`: in the order changes were "
    "committed; `next_cursor` is then always set (on the last page: where the next sync starts), "
    "and a client that keeps it and asks again never misses a change committed later."
)

router = APIRouter(prefix="/v1/returnees", tags=["returnees"], route_class=OrjsonRoute)  # batch bodies are large


def _json(body: object, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), status_code=status_code, media_type="application/json", headers=headers)


@router.post("/batch", response_model=BatchOut, name="returnee.batch", dependencies=[idempotency.KEY])
async def push_batch(
    caller: auth.ReturneesWrite,
    session: SessionDep,
    request: Request,
    body: BatchIn,
    notify: bool = False,
) -> Response:
    """Create or update up to 1,000 of the caller's returnee records, keyed by its
    ``source_ref``. Each record gets its own result (``created``, ``updated``, ``unchanged``,
    or ``rejected`` with field errors); one bad record does not stop the others. Takes an
    optional ``Idempotency-Key``. ``notify=true`` raises deportation notices for the districts
    touched."""
    if notify and not caller.has(Scope.notices_write):
        raise Forbidden(Scope.notices_write)
    idem = await idempotency.begin(session, caller, request)
    if idem.replay is not None:
        return idem.replay
    outcome = await service.upsert_batch(session, caller, body.records, at_commit=True)
    notices = await service.notify_districts(session, caller, outcome.touched) if notify else []
    encoded = orjson.dumps({"results": outcome.results, "notices": notices}, option=orjson.OPT_UTC_Z)
    idem.remember_encoded(session, 200, encoded)  # the reply exactly as sent
    return Response(encoded, media_type="application/json")


@router.get("", response_model=ReturneeList, name="returnee.list", openapi_extra=enums(district=region_codes()))
async def list_returnees(
    caller: auth.ReturneesRead,
    session: SessionDep,
    district: Annotated[Region | None, Query(description=REGION_HELP + "; an unknown code is a 422")] = None,
    returned_from: Annotated[Day | None, Query(description="return_date on or after; " + DAY_HELP)] = None,
    returned_to: Annotated[Day | None, Query(description="return_date on or before; " + DAY_HELP)] = None,
    trafficking_status: TraffickingStatus | None = None,
    updated_since: Annotated[Instant | None, Query(description="changed at or after; " + INSTANT_HELP
                                                   + ". Not a sync key: use sort=changes")] = None,
    sort: Annotated[Literal["updated_at", "changes"], Query(description=SORT_HELP)] = "updated_at",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Returnees in the caller's jurisdiction, and those its agency pushed, by ``updated_at``
    (default) or in the order changes were committed (``sort=changes``, the way to sync). NIK,
    passport and phone are masked unless the caller holds ``pii:read``."""
    settings = unit_of(session).settings
    keyset = RETURNEE_CHANGES if sort == "changes" else RETURNEES
    filters = service.ListFilter(district, returned_from, returned_to,
                                 trafficking_status and str(trafficking_status), updated_since, sort)
    items, next_after = await service.list_visible(session, caller, filters, after=keyset.open(settings, cursor),
                                                   limit=limit)
    return _json({"items": items, "next_cursor": keyset.seal(settings, next_after)})


@router.get("/{id}", response_model=ReturneeOut, name="returnee.get", openapi_extra=ETAG,
            responses={404: {"description": "not in the caller's view; for the receiver of an open referral "
                             "about it, a `read-through-referral` problem naming `referral_returnee`, "
                             "the referral's view of it"}})
async def get_returnee(caller: auth.ReturneesRead, session: SessionDep, id: uuid.UUID) -> Response:
    """One returnee (404 outside the caller's view), with its ``ETag``. NIK, passport and phone
    are shown only with ``pii:read``; without it they are ``null`` and ``*_on_file`` says
    whether the record holds one."""
    r, body = await service.read(session, caller, id)
    return _json(body, headers={"ETag": etag(r.version)})
