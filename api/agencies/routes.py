from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.http import auth
from api.agencies import service
from api.agencies.schemas import AgencyCreate, AgencyList, AgencyPublic, ClientCreate, ClientCreated
from api.http.session import SessionDep
from api.core.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/agencies", tags=["agencies"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgencyPublic, name="agency.create")
async def create_agency(caller: auth.Admin, session: SessionDep, body: AgencyCreate) -> AgencyPublic:
    """Register an agency (operator only)."""
    return AgencyPublic.model_validate(await service.create_agency(session, body))


@router.get("", response_model=AgencyList, name="agency.list")
async def list_agencies(
    caller: auth.Admin,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> AgencyList:
    after = decode_cursor(cursor)["code"] if cursor else None
    rows = await service.list_agencies(session, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AgencyList(
        items=[AgencyPublic.model_validate(a) for a in rows],
        next_cursor=encode_cursor({"code": rows[-1].code}) if more else None,
    )


@router.post("/{code}/clients", status_code=status.HTTP_201_CREATED, response_model=ClientCreated,
             name="client.create")
async def create_client(caller: auth.Admin, session: SessionDep, code: str, body: ClientCreate) -> ClientCreated:
    """Create an API client of an agency. The secret is in this reply only."""
    return await service.create_client(session, code, body)


@router.post("/{code}/clients/{client_id}/disable", response_model=dict, name="client.disable")
async def disable_client(caller: auth.Admin, session: SessionDep, code: str, client_id: str) -> dict:
    """Disable a client: its tokens stop working at once."""
    client = await service.set_client_disabled(session, code, client_id, True)
    return {"client_id": client.client_id, "disabled": True}
