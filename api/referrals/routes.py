"""``/v1/referrals``: refer a case to another agency, follow it, move it through its states."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock
from api.core.context import Caller
from api.core.errors import ValidationFailed
from api.core.params import INSTANT_HELP, Instant
from api.core.preconditions import etag
from api.core.scopes import Scope
from api.core.unit import unit_of
from api.http import auth, idempotency
from api.http.openapi import ETAG, enums
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep
from api.referrals import service
from api.referrals.schemas import (
    REFERRALS,
    ReferralCreate,
    ReferralList,
    ReferralPublic,
    ReferralSummary,
    ReferredReturnee,
    SortOrder,
    TransitionIn,
)
from models import Referral, ReferralHistory, ReferralReason, ReferralStatus, Urgency

router = APIRouter(prefix="/v1/referrals", tags=["referrals"])

_DUE = ("`due_at` is set from `urgency` at creation: `emergency` 24 hours, `high` 72 hours, "
        "`normal` 7 days (UU 21/2007 Art. 52). `overdue` is true while the referral is open and past `due_at`.")


def _location(id: uuid.UUID | str) -> str:
    return f"/v1/referrals/{id}"


def _public(session: AsyncSession, caller: Caller, ref: Referral, history: list[ReferralHistory]) -> ReferralPublic:
    key = unit_of(session).settings.data_key_bytes
    return ReferralPublic.with_history(ref, history, clock.now(), show_pii=caller.has(Scope.pii_read), data_key=key)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ReferralPublic,
    name="referral.create",
    dependencies=[idempotency.KEY],
    openapi_extra=ETAG,
    description="Refer a case to another registered agency, about a returnee your agency may see "
    "(`returnee_id`) or a person described inline (`subject`). Without the subject's consent a "
    "`processing_basis` (UU PDP 27/2022 Art. 20) is required; a child's consent names the guardian. "
    + _DUE + " Takes an optional `Idempotency-Key`.",
)
async def create_referral(
    caller: auth.ReferralsWrite, session: SessionDep, request: Request, body: ReferralCreate
) -> Response:
    idem = await idempotency.begin(session, caller, request)
    if idem.replay is not None:
        if idem.replay.status_code == status.HTTP_201_CREATED:
            first = orjson.loads(idem.replay.body)
            idem.replay.headers["Location"] = _location(first["id"])
            idem.replay.headers["ETag"] = etag(first["version"])
        return idem.replay
    ref, history = await service.create_referral(session, caller, body)
    out = _public(session, caller, ref, history).model_dump(mode="json", by_alias=True)
    idem.remember(session, status.HTTP_201_CREATED, out)
    return JSONResponse(out, status_code=status.HTTP_201_CREATED,
                        headers={"Location": _location(ref.id), "ETag": etag(ref.version)})


def _statuses(values: list[str] | None) -> list[ReferralStatus]:
    out: list[ReferralStatus] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(ReferralStatus(part))
            except ValueError:
                raise ValidationFailed(
                    "See 'errors' for the fields at fault",
                    errors=[{"field": "query.status",
                             "message": f"'{part}' is not one of {', '.join(s.value for s in ReferralStatus)}"}],
                ) from None
    return out


@router.get("", response_model=ReferralList, name="referral.list",
            openapi_extra=enums(status=[s.value for s in ReferralStatus]),
            description="Referrals your agency sent or received (`role`), or, for an oversight agency, every "
            "referral in its jurisdiction. `status` repeats or takes a comma list. `overdue=true`: open and past "
            "`due_at`. Sorted by `sort` (default `due_at`, the most pressing first), keyset-paginated. To sync, use "
            "`sort=changes`: the order changes were committed, with `next_cursor` always set (on the last page: "
            "where the next sync starts); `updated_since` is not a sync key (a change committed later can carry "
            "an earlier `updated_at`).")
async def list_referrals(
    caller: auth.ReferralsRead,
    session: SessionDep,
    role: Literal["sent", "received"] | None = None,
    status_: Annotated[list[str] | None, Query(alias="status")] = None,
    reason: ReferralReason | None = None,
    urgency: Urgency | None = None,
    overdue: bool | None = None,
    updated_since: Annotated[Instant | None, Query(description="changed at or after; " + INSTANT_HELP)] = None,
    returnee_id: uuid.UUID | None = None,
    sort: SortOrder = "due_at",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ReferralList:
    settings = unit_of(session).settings
    keyset = REFERRALS[sort]
    q = service.ReferralQuery(role=role, status=_statuses(status_), reason=reason, urgency=urgency,
                              overdue=overdue, updated_since=updated_since, returnee_id=returnee_id,
                              sort=sort, limit=limit, after=keyset.open(settings, cursor))
    rows, next_after = await service.list_referrals(session, caller, q)
    now, pii, key = clock.now(), caller.has(Scope.pii_read), settings.data_key_bytes
    return ReferralList(items=[ReferralSummary.of(r, now, pii, key) for r in rows],
                        next_cursor=keyset.seal(settings, next_after))


@router.get("/{id}", response_model=ReferralPublic, name="referral.get", openapi_extra=ETAG,
            description="One referral with its history. " + _DUE)
async def get_referral(caller: auth.ReferralsRead, session: SessionDep, id: uuid.UUID) -> Response:
    ref, history = await service.get_referral(session, caller, id)
    out = _public(session, caller, ref, history).model_dump(mode="json", by_alias=True)
    return JSONResponse(out, headers={"ETag": etag(ref.version)})


@router.post(
    "/{id}/transitions",
    response_model=ReferralPublic,
    name="referral.transition",
    openapi_extra=ETAG,
    responses={409: {"description": "a move the state machine forbids, or by the wrong party; nothing changes"}},
    description="Move the referral (FHIR Task statuses). The receiver (`referrals:respond`): receive, accept, "
    "reject (note required), start, hold, resume, complete, fail (note required). The sender "
    "(`referrals:write`): cancel, from any open state. Needs `If-Match` (428 without, 412 when stale); "
    "a move the state machine forbids, or by the wrong party, is 409 and changes nothing.",
)
async def transition(
    caller: auth.ReferralsAct,
    session: SessionDep,
    id: uuid.UUID,
    body: TransitionIn,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    ref, history = await service.transition(session, caller, id, body.action, body.note, if_match)
    out = _public(session, caller, ref, history).model_dump(mode="json", by_alias=True)
    return JSONResponse(out, headers={"ETag": etag(ref.version)})


@router.get("/{id}/returnee", response_model=ReferredReturnee, name="referral.returnee",
            description="The referred returnee's basic record (no NIK, passport or phone), for the receiving "
            "agency while the referral is open; 404 otherwise.")
async def referred_returnee(caller: auth.ReferralsRead, session: SessionDep, id: uuid.UUID) -> ReferredReturnee:
    return ReferredReturnee.model_validate(await service.referred_returnee(session, caller, id))
