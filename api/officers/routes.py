from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.core.unit import unit_of
from api.http import auth
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep
from api.officers import service
from api.officers.schemas import (
    OFFICERS,
    OfficerCreate,
    OfficerCreated,
    OfficerList,
    OfficerPublic,
    OfficerUpdate,
    PasswordReset,
    TotpIssued,
    TotpReset,
)

router = APIRouter(prefix="/v1/agencies", tags=["officers"])

@router.post("/{code}/officers", status_code=status.HTTP_201_CREATED, response_model=OfficerCreated,
             name="officer.create", responses={409: {"description": "an officer with this e-mail address exists"}})
async def create_officer(caller: auth.OfficersManage, session: SessionDep, code: str,
                         body: OfficerCreate) -> OfficerCreated:
    """Create an officer account of an agency (the operator, or the agency's own administrator
    with ``officers:manage``). The officer holds a subset of the agency's scopes; a generated
    password (the officer chooses their own at the first sign-in) and the second factor's URI
    are in this reply only."""
    return await service.create_officer(session, code, body, by=caller)


@router.get("/{code}/officers", response_model=OfficerList, name="officer.list")
async def list_officers(caller: auth.OfficersManage, session: SessionDep, code: str, limit: Limit = DEFAULT_LIMIT,
                        cursor: Cursor = None) -> OfficerList:
    """The agency's officers by e-mail address: their scopes, whether a second factor is
    enrolled, whether the account is disabled or locked, when they last signed in. Never a
    password hash or a secret."""
    settings = unit_of(session).settings
    page = await service.list_officers(session, code, by=caller, after=OFFICERS.open(settings, cursor), limit=limit)
    return OfficerList(items=page.items, next_cursor=OFFICERS.seal(settings, page.next))


@router.get("/{code}/officers/{id}", response_model=OfficerPublic, name="officer.get")
async def get_officer(caller: auth.OfficersManage, session: SessionDep, code: str, id: uuid.UUID) -> OfficerPublic:
    """One officer of the agency (another agency's is a 404)."""
    return await service.read_officer(session, code, id, by=caller)


@router.patch("/{code}/officers/{id}", response_model=OfficerPublic, name="officer.update",
              responses={409: {"description": "an officer cannot disable their own account"}})
async def update_officer(caller: auth.OfficersManage, session: SessionDep, code: str, id: uuid.UUID,
                         body: OfficerUpdate) -> OfficerPublic:
    """Change an officer's scopes (still a subset of the agency's: else a 422 that changes
    nothing), name, or ``disabled``. Disabling stops every sign-in and ends the officer's
    sessions at once; ``"disabled": false`` lets the account sign in again."""
    return await service.update_officer(session, code, id, body, by=caller)


@router.post("/{code}/officers/{id}/password", response_model=PasswordReset, name="officer.password_reset")
async def reset_password(caller: auth.OfficersManage, session: SessionDep, code: str, id: uuid.UUID) -> PasswordReset:
    """A new one-time password for the officer, in this reply only; the old one stops working,
    a lock-out after failed sign-ins is lifted, and the officer chooses their own password at the
    next sign-in. Every session of the officer ends at once."""
    return await service.reset_password(session, code, id, by=caller)


@router.post("/{code}/officers/{id}/totp", response_model=TotpIssued, name="officer.totp_reset")
async def reset_totp(caller: auth.OfficersManage, session: SessionDep, code: str, id: uuid.UUID,
                     body: TotpReset) -> TotpIssued:
    """Enrol or re-enrol the officer's second factor: with ``{}`` a new TOTP secret, stored
    encrypted, its ``otpauth://`` URI in this reply only; with ``"enrol_at_sign_in": true`` no
    secret, so that the officer enrols one of their own at the next sign-in (where the agency
    requires a second factor). Every session of the officer ends at once."""
    return await service.reset_totp(session, code, id, body, by=caller)
