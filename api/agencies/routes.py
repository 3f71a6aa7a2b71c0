from __future__ import annotations

from fastapi import APIRouter, status

from api.agencies import service
from api.agencies.schemas import AGENCIES, AgencyCreate, AgencyList, AgencyPublic, ClientCreate, ClientCreated
from api.core.unit import unit_of
from api.http import auth
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep

router = APIRouter(prefix="/v1/agencies", tags=["agencies"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgencyPublic, name="agency.create",
             responses={409: {"description": "an agency with this code is already registered"}})
async def create_agency(caller: auth.Admin, session: SessionDep, body: AgencyCreate) -> AgencyPublic:
    """Register an agency (operator only)."""
    return AgencyPublic.model_validate(await service.create_agency(session, body))


@router.get("", response_model=AgencyList, name="agency.list")
async def list_agencies(
    caller: auth.Admin,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> AgencyList:
    """The registered agencies, by code (operator only)."""
    settings = unit_of(session).settings
    page = await service.list_agencies(session, after=AGENCIES.open(settings, cursor), limit=limit)
    return AgencyList(items=[AgencyPublic.model_validate(a) for a in page.items],
                      next_cursor=AGENCIES.seal(settings, page.next))


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
