from __future__ import annotations

import uuid
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request, Response, status

from api.core.params import DISTRICT_HELP, District, district_codes
from api.core.preconditions import etag
from api.core.unit import unit_of
from api.http import auth, idempotency
from api.http.openapi import ETAG, enums
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep
from api.notices import service
from api.notices.schemas import (
    NOTICE_CHANGES,
    NOTICES,
    FollowUpCreate,
    FollowUpPublic,
    NoticeCreate,
    NoticeList,
    NoticePublic,
    NoticeReturneePublic,
    NoticeSummary,
)
from models import NoticeStatus

router = APIRouter(prefix="/v1/notices", tags=["notices"])


def _location(notice_id: object) -> str:
    return f"/v1/notices/{notice_id}"


def _public(detail: service.NoticeDetail) -> NoticePublic:
    return NoticePublic(
        **NoticeSummary.model_validate(detail.notice).model_dump(),
        returnee_ids=[r["id"] for r in detail.returnees],
        returnees=[NoticeReturneePublic(**r) for r in detail.returnees],
        follow_ups=[FollowUpPublic.model_validate(f) for f in detail.follow_ups],
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NoticePublic, name="notice.create",
             dependencies=[idempotency.KEY], openapi_extra=ETAG, responses={422: {"description": "a returnee is unknown, not visible, or from another district"}})
async def create_notice(
    caller: auth.NoticesWrite, session: SessionDep, request: Request, response: Response, body: NoticeCreate
) -> NoticePublic | Response:
    """Issue a deportation notice to one district, listing its returnees."""
    idem = await idempotency.begin(session, caller, request)
    if idem.replay is not None:
        replayed = orjson.loads(idem.replay.body)
        if isinstance(replayed, dict) and "id" in replayed:
            idem.replay.headers["Location"] = _location(replayed["id"])
        return idem.replay
    notice = await service.create_notice(session, caller, body)
    reply = _public(await service.describe(session, notice))  # the create entry names the returnees
    idem.remember(session, status.HTTP_201_CREATED, reply.model_dump(mode="json"))
    response.headers["Location"] = _location(notice.id)
    response.headers["ETag"] = etag(notice.version)
    return reply


@router.get("", response_model=NoticeList, name="notice.list", openapi_extra=enums(district=district_codes()))
async def list_notices(
    caller: auth.NoticesRead,
    session: SessionDep,
    acknowledged: bool | None = None,
    district: Annotated[District | None, Query(description="addressed to this district; " + DISTRICT_HELP
                                               + ", an unknown code is a 422")] = None,
    status: Annotated[NoticeStatus | None, Query(description="`waiting_for_agency`: the notices to districts of "
                                                 "other provinces that wait for an agency there")] = None,
    sort: Annotated[Literal["-created_at", "changes"], Query(
        description="`-created_at` (default): newest first. `changes`: in the order changes (acknowledgements, "
        "follow-ups) were committed, with `next_cursor` always set (on the last page: where the next sync "
        "starts); the way to sync")] = "-created_at",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> NoticeList:
    """Notices addressed to a district in the caller's jurisdiction, or issued by its agency;
    newest first, or in the order of their last change (``sort=changes``)."""
    settings = unit_of(session).settings
    keyset = NOTICE_CHANGES if sort == "changes" else NOTICES
    page = await service.list_notices(session, caller, acknowledged=acknowledged, district=district,
                                      status=status, after=keyset.open(settings, cursor), limit=limit, changes=sort == "changes")
    return NoticeList(items=[NoticeSummary.model_validate(n) for n in page.items],
                      next_cursor=keyset.seal(settings, page.next))


@router.get("/{id}", response_model=NoticePublic, name="notice.get", openapi_extra=ETAG)
async def get_notice(caller: auth.NoticesRead, session: SessionDep, response: Response, id: uuid.UUID) -> NoticePublic:
    """One notice, with its returnees and follow-ups."""
    detail = await service.get_notice(session, caller, id)
    response.headers["ETag"] = etag(detail.notice.version)
    return _public(detail)


@router.post("/{id}/acknowledge", response_model=NoticePublic, name="notice.acknowledge", openapi_extra=ETAG,
             responses={409: {"description": "already acknowledged"}, 412: {"description": "stale If-Match"},
                        428: {"description": "If-Match missing"}})
async def acknowledge(
    caller: auth.NoticesAck,
    session: SessionDep,
    response: Response,
    id: uuid.UUID,
    if_match: Annotated[str | None, Header()] = None,
) -> NoticePublic:
    """The addressed district acknowledges the notice. Send ``If-Match`` with its ETag."""
    notice = await service.acknowledge(session, caller, id, if_match)
    response.headers["ETag"] = etag(notice.version)
    return _public(await service.get_notice(session, caller, notice.id))


@router.post("/{id}/follow-ups", status_code=status.HTTP_201_CREATED, response_model=FollowUpPublic,
             name="notice.follow_up", dependencies=[idempotency.KEY])
async def record_follow_up(
    caller: auth.NoticesAck,
    session: SessionDep,
    request: Request,
    response: Response,
    id: uuid.UUID,
    body: FollowUpCreate,
) -> FollowUpPublic | Response:
    """The addressed district records a follow-up action (home visit, reintegration, ...)."""
    idem = await idempotency.begin(session, caller, request)
    if idem.replay is not None:
        return idem.replay
    follow_up = await service.record_follow_up(session, caller, id, body)
    reply = FollowUpPublic.model_validate(follow_up)
    idem.remember(session, status.HTTP_201_CREATED, reply.model_dump(mode="json"))
    response.headers["Location"] = _location(id)
    return reply
