from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.core.unit import unit_of
from api.http import auth
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep
from api.regions import service
from api.regions.schemas import REGIONS, Level, RegionDetail, RegionList, RegionOut
from models.regions import held_to_depth

router = APIRouter(prefix="/v1/regions", tags=["regions"])


@router.get("", response_model=RegionList, name="region.list",
            responses={404: {"description": "`parent` is not a region of the reference"}})
async def list_regions(
    caller: auth.AnyToken,
    session: SessionDep,
    parent: Annotated[str | None, Query(max_length=20, examples=["61.07"],
                                        description="the regions one level down from this code")] = None,
    level: Level | None = None,
    q: Annotated[str | None, Query(min_length=2, max_length=100, description="part of the name")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> RegionList:
    """Region codes with their names, in code order: every province and regency of Indonesia,
    and Kalimantan Barat down to desa / kelurahan. No parameter: the provinces. Any valid token."""
    settings = unit_of(session).settings
    page = service.list_regions(parent=parent, level=level, q=q, after=REGIONS.open(settings, cursor), limit=limit)
    return RegionList(items=[RegionOut.model_validate(r) for r in page.items],
                      next_cursor=REGIONS.seal(settings, page.next))


@router.get("/{code}", response_model=RegionDetail, name="region.get")
async def get_region(caller: auth.AnyToken, code: str) -> RegionDetail:
    """One region with its name, the regions above it and how many lie below."""
    region, path, children = service.get_region(code)
    return RegionDetail(**RegionOut.model_validate(region).model_dump(),
                        path=[RegionOut.model_validate(r) for r in path], children=children,
                        complete_below=held_to_depth(region.code))
