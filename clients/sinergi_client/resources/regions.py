"""``/v1/regions``: the region reference, codes with their names (any valid token).

Every province and regency (kabupaten / kota) of Indonesia, and Kalimantan Barat down to desa /
kelurahan: ``client.regions.get("61.07").name`` is ``"Kabupaten Bengkayang"``;
``client.regions.list(parent="61.07")`` its kecamatan.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Unpack
from urllib.parse import quote

from sinergi_client._base_client import AsyncPager, RequestOptions, SyncPage
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import Region, RegionDetail, RegionLevel


def _list_params(parent: str | None, level: RegionLevel | None, q: str | None, limit: int | None,
                 cursor: str | None) -> dict[str, Any]:
    return {"parent": parent, "level": level, "q": q, "limit": limit, "cursor": cursor}


def _path(code: str) -> str:
    return "/v1/regions/" + quote(code, safe="")


class Regions(SyncResource):
    @cached_property
    def with_raw_response(self) -> RegionsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return RegionsWithRawResponse(self)

    def list(self, *, parent: str | None = None, level: RegionLevel | None = None, q: str | None = None,
             limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> SyncPage[Region]:
        """Regions in code order. ``parent`` alone: those one level down; with ``level``: every
        region of that level under it; ``q``: part of the name (accents and case ignored);
        nothing: the provinces. An unknown ``parent`` is a ``NotFoundError``."""
        return self._client.page("/v1/regions", Region, params=_list_params(parent, level, q, limit, cursor),
                                 options=options)

    def get(self, code: str, **options: Unpack[RequestOptions]) -> RegionDetail:
        """One region with its name, the regions above it and how many lie one level down."""
        return self._client.get(_path(code), RegionDetail, options=options)


class AsyncRegions(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncRegionsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncRegionsWithRawResponse(self)

    def list(self, *, parent: str | None = None, level: RegionLevel | None = None, q: str | None = None,
             limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> AsyncPager[Region]:
        return self._client.page("/v1/regions", Region, params=_list_params(parent, level, q, limit, cursor),
                                 options=options)

    async def get(self, code: str, **options: Unpack[RequestOptions]) -> RegionDetail:
        return await self._client.get(_path(code), RegionDetail, options=options)


class RegionsWithRawResponse:
    def __init__(self, resource: Regions) -> None:
        self.list = to_raw_response_wrapper(resource.list)
        self.get = to_raw_response_wrapper(resource.get)


class AsyncRegionsWithRawResponse:
    def __init__(self, resource: AsyncRegions) -> None:
        self.list = async_to_raw_response_wrapper(resource.list)
        self.get = async_to_raw_response_wrapper(resource.get)
