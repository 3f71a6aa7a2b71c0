from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response, status

from api.core.preconditions import etag
from api.core.unit import unit_of
from api.http import auth, idempotency
from api.http.openapi import ETAG
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep
from api.manifests import service
from api.manifests.schemas import (
    MANIFESTS,
    PERSON_VIEWS,
    ArrivalsIn,
    ManifestCreate,
    ManifestList,
    ManifestOut,
    ManifestPersonList,
    ManifestPersonOut,
    ManifestSummary,
    OutcomeIn,
    View,
)

router = APIRouter(prefix="/v1/manifests", tags=["manifests"])

IfMatch = Annotated[str | None, Header()]


def _location(manifest_id: object) -> str:
    return f"/v1/manifests/{manifest_id}"


def _replay(idem: idempotency.Idempotency) -> Response | None:
    if idem.replay is not None:
        replayed = orjson.loads(idem.replay.body)
        if isinstance(replayed, dict) and "id" in replayed:
            idem.replay.headers["Location"] = _location(replayed.get("manifest_id", replayed["id"]))
        return idem.replay
    return None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ManifestOut, name="manifest.create",
             dependencies=[idempotency.KEY], openapi_extra=ETAG,
             responses={403: {"description": "a person's origin lies outside where the agency may write"},
                        409: {"description": "the agency already registered this letter"}})
async def create_manifest(
    caller: auth.ManifestsWrite, session: SessionDep, request: Request, response: Response, body: ManifestCreate
) -> ManifestOut | Response:
    """Register an announced deportation: the consulate's letter, the expected day, the border
    post and the people listed (identity as far as known). Takes an ``Idempotency-Key``."""
    idem = await idempotency.begin(session, caller, request)
    if (replay := _replay(idem)) is not None:
        return replay
    manifest = await service.create_manifest(session, caller, body)
    view = await service.describe(session, caller, manifest, action="manifest.read")
    reply = ManifestOut.model_validate(view.body)
    idem.remember(session, status.HTTP_201_CREATED, reply.model_dump(mode="json"))
    response.headers["Location"] = _location(manifest.id)
    response.headers["ETag"] = etag(manifest.version)
    return reply


@router.get("", response_model=ManifestList, name="manifest.list")
async def list_manifests(
    caller: auth.ManifestsRead, session: SessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> ManifestList:
    """The manifests the caller may see (its agency's, the province's, or listing people of its
    jurisdiction), newest first."""
    settings = unit_of(session).settings
    page = await service.list_manifests(session, caller, after=MANIFESTS.open(settings, cursor), limit=limit)
    return ManifestList(items=[ManifestSummary.model_validate(service.summary_public(m)) for m in page.items],
                        next_cursor=MANIFESTS.seal(settings, page.next))


@router.get("/persons", response_model=ManifestPersonList, name="manifest.week")
async def week_list(
    caller: auth.ManifestsRead,
    session: SessionDep,
    view: Annotated[View, Query(description="`expected_this_week`: listed, expected Monday to Sunday of this week "
                                "(West Indonesia Time); `arrived_not_located`: arrived in the last 7 days, not "
                                "located yet; `not_located_after_7_days`: arrived 7 days ago or more, still not "
                                "located")],
    district: Annotated[str | None, Query(max_length=16, examples=["61.07"])] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ManifestPersonList:
    """The lists that drive the district's week, of the people the caller may see."""
    settings = unit_of(session).settings
    keyset = PERSON_VIEWS[view]
    items, nxt = await service.week_list(session, caller, view, district=district,
                                         after=keyset.open(settings, cursor), limit=limit)
    return ManifestPersonList(items=[ManifestPersonOut.model_validate(i) for i in items],
                              next_cursor=keyset.seal(settings, nxt))


@router.get("/{id}", response_model=ManifestOut, name="manifest.get", openapi_extra=ETAG)
async def get_manifest(caller: auth.ManifestsRead, session: SessionDep, response: Response, id: uuid.UUID) -> ManifestOut:
    """One manifest with the people the caller may see (all for the registering agency and the
    province, a district's own people otherwise)."""
    view = await service.get_manifest(session, caller, id)
    response.headers["ETag"] = etag(view.manifest.version)
    return ManifestOut.model_validate(view.body)


@router.post("/{id}/arrivals", response_model=ManifestOut, name="manifest.arrivals",
             dependencies=[idempotency.KEY], openapi_extra=ETAG,
             responses={403: {"description": "not the registering agency"}, 409: {"description": "already arrived"},
                        412: {"description": "stale If-Match"}, 428: {"description": "If-Match missing"}})
async def mark_arrivals(
    caller: auth.ManifestsWrite, session: SessionDep, request: Request, response: Response, id: uuid.UUID,
    body: ArrivalsIn, if_match: IfMatch = None,
) -> ManifestOut | Response:
    """At the border post: who of the manifest ``arrived`` or did ``not_arrived``. Each arrived
    person of known origin becomes a returnee record and is on its origin district's notice.
    Send ``If-Match`` with the manifest's ETag; takes an ``Idempotency-Key``."""
    idem = await idempotency.begin(session, caller, request)
    if (replay := _replay(idem)) is not None:
        return replay
    manifest = await service.mark_arrivals(session, caller, id, if_match, body)
    view = await service.describe(session, caller, manifest, action="manifest.read")
    reply = ManifestOut.model_validate(view.body)
    idem.remember(session, status.HTTP_200_OK, reply.model_dump(mode="json"))
    response.headers["ETag"] = etag(manifest.version)
    return reply


@router.get("/{id}/persons/{person_id}", response_model=ManifestPersonOut, name="manifest.person",
            openapi_extra=ETAG)
async def get_person(caller: auth.ManifestsRead, session: SessionDep, response: Response, id: uuid.UUID,
                     person_id: uuid.UUID) -> ManifestPersonOut:
    """One person of a manifest, with the ETag to record the outcome with."""
    person, body = await service.get_person(session, caller, id, person_id)
    response.headers["ETag"] = etag(person.version)
    return ManifestPersonOut.model_validate(body)


@router.post("/{id}/persons/{person_id}/outcome", response_model=ManifestPersonOut, name="manifest.locate",
             dependencies=[idempotency.KEY], openapi_extra=ETAG,
             responses={403: {"description": "not the person's home district"},
                        409: {"description": "not arrived, or already located"},
                        412: {"description": "stale If-Match"}, 428: {"description": "If-Match missing"}})
async def record_outcome(
    caller: auth.ManifestsLocate, session: SessionDep, request: Request, response: Response, id: uuid.UUID,
    person_id: uuid.UUID, body: OutcomeIn, if_match: IfMatch = None,
) -> ManifestPersonOut | Response:
    """The home district followed an arrived person: ``located`` (desa, who saw them, when) or
    ``not_located``. Send ``If-Match`` with the person's ETag; takes an ``Idempotency-Key``."""
    idem = await idempotency.begin(session, caller, request)
    if (replay := _replay(idem)) is not None:
        return replay
    person, out = await service.record_outcome(session, caller, id, person_id, if_match, body)
    reply = ManifestPersonOut.model_validate(out)
    reply_json: dict[str, Any] = reply.model_dump(mode="json")
    idem.remember(session, status.HTTP_200_OK, reply_json)
    response.headers["ETag"] = etag(person.version)
    return reply
