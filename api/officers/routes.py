from __future__ import annotations

from fastapi import APIRouter, status

from api.http import auth
from api.http.session import SessionDep
from api.officers import service
from api.officers.schemas import OfficerCreate, OfficerCreated

router = APIRouter(prefix="/v1/agencies", tags=["officers"])


@router.post("/{code}/officers", status_code=status.HTTP_201_CREATED, response_model=OfficerCreated,
             name="officer.create")
async def create_officer(caller: auth.OfficersManage, session: SessionDep, code: str,
                         body: OfficerCreate) -> OfficerCreated:
    """Create an officer account of an agency (the operator, or the agency's own administrator
    with ``officers:manage``). The officer holds a subset of the agency's scopes; a generated
    password and the second factor's URI are in this reply only."""
    return await service.create_officer(session, code, body, by=caller)
