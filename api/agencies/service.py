"""Registering agencies and their API clients (the API's admin routes and the CLI share this)."""

from __future__ import annotations

import secrets

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.agencies.schemas import AgencyCreate, ClientCreate, ClientCreated
from api.core import audit, clock, crypto, pagination
from api.core.errors import Conflict, NotFound
from api.core.pagination import Position, Slice
from api.notices import service as notices
from models import Agency, ApiClient


async def create_agency(session: AsyncSession, data: AgencyCreate) -> Agency:
    if await session.get(Agency, data.code) is not None:
        raise Conflict(f"Agency {data.code} is already registered")
    agency = Agency(code=data.code, name=data.name, kind=data.kind, jurisdiction=data.jurisdiction)
    session.add(agency)
    await session.flush()
    audit.record(session, "agency.create", resource_type="agency", resource_id=agency.code)
    # notices to people of its region that waited for an agency there are delivered now
    await notices.deliver_waiting(session, agency.code, agency.jurisdiction)
    return agency


async def list_agencies(session: AsyncSession, *, after: Position | None, limit: int) -> Slice[Agency]:
    """Agencies in code order, after the position ``after`` (``(code,)``)."""
    return await pagination.read_page(session, select(Agency), [col(Agency.code)], after, limit)


def new_client_id(agency_code: str) -> str:
    return f"{agency_code.lower()}-{secrets.token_hex(4)}"


async def create_client(session: AsyncSession, agency_code: str, data: ClientCreate) -> ClientCreated:
    agency = await session.get(Agency, agency_code)
    if agency is None:
        raise NotFound(f"No agency {agency_code}")
    secret = "sk_" + secrets.token_urlsafe(32)
    client = ApiClient(
        client_id=new_client_id(agency.code),
        agency_code=agency.code,
        name=data.name,
        scopes=" ".join(data.scopes),
        secret_hash=crypto.hash_secret(secret),
    )
    session.add(client)
    await session.flush()
    audit.record(session, "client.create", resource_type="api_client", resource_id=client.client_id,
                 agency_code=agency.code, scopes=data.scopes)
    return ClientCreated(client_id=client.client_id, client_secret=secret, agency=agency.code, scopes=data.scopes)


async def set_client_disabled(
    session: AsyncSession, agency_code: str, client_id: str, disabled: bool
) -> ApiClient:
    client = await session.get(ApiClient, client_id)
    if client is None or client.agency_code != agency_code:
        raise NotFound(f"No client {client_id}")
    client.disabled_at = clock.now() if disabled else None
    session.add(client)
    await session.flush()
    audit.record(session, "client.disable" if disabled else "client.enable",
                 resource_type="api_client", resource_id=client_id)
    return client
