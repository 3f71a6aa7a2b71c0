"""``/v1/agencies`` (the operator, scope ``admin``): agencies and their API clients."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, Unpack

from sinergi_client._base_client import AsyncPager, RequestOptions, SyncPage
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import Agency, AgencyCreate, AgencyKind, ClientCreate, ClientCreated, Reply


class Disabled(Reply):
    pass


def _agency(code: str, name: str, jurisdiction: str, kind: AgencyKind | None) -> dict[str, Any]:
    body = AgencyCreate(code=code, name=name, jurisdiction=jurisdiction)
    if kind is not None:
        body.kind = kind
    return body.body()


def _client(scopes: Sequence[str], name: str | None) -> dict[str, Any]:
    body = ClientCreate(scopes=list(scopes))
    if name is not None:
        body.name = name
    return body.body()


class Agencies(SyncResource):
    @cached_property
    def with_raw_response(self) -> AgenciesWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AgenciesWithRawResponse(self)

    def create(self, *, code: str, name: str, jurisdiction: str, kind: AgencyKind | None = None,
               **options: Unpack[RequestOptions]) -> Agency:
        return self._client.post("/v1/agencies", Agency, body=_agency(code, name, jurisdiction, kind), options=options)

    def list(self, *, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> SyncPage[Agency]:
        return self._client.page("/v1/agencies", Agency, params={"limit": limit, "cursor": cursor}, options=options)

    def create_client(self, code: str, *, scopes: Sequence[str], name: str | None = None,
                      **options: Unpack[RequestOptions]) -> ClientCreated:
        return self._client.post(f"/v1/agencies/{code}/clients", ClientCreated, body=_client(scopes, name),
                                 options=options)

    def disable_client(self, code: str, client_id: str, **options: Unpack[RequestOptions]) -> Disabled:
        return self._client.post(f"/v1/agencies/{code}/clients/{client_id}/disable", Disabled, options=options)


class AsyncAgencies(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncAgenciesWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncAgenciesWithRawResponse(self)

    async def create(self, *, code: str, name: str, jurisdiction: str, kind: AgencyKind | None = None,
                     **options: Unpack[RequestOptions]) -> Agency:
        return await self._client.post("/v1/agencies", Agency, body=_agency(code, name, jurisdiction, kind),
                                       options=options)

    def list(self, *, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> AsyncPager[Agency]:
        return self._client.page("/v1/agencies", Agency, params={"limit": limit, "cursor": cursor}, options=options)

    async def create_client(self, code: str, *, scopes: Sequence[str], name: str | None = None,
                            **options: Unpack[RequestOptions]) -> ClientCreated:
        return await self._client.post(f"/v1/agencies/{code}/clients", ClientCreated, body=_client(scopes, name),
                                       options=options)

    async def disable_client(self, code: str, client_id: str, **options: Unpack[RequestOptions]) -> Disabled:
        return await self._client.post(f"/v1/agencies/{code}/clients/{client_id}/disable", Disabled,
                                       options=options)


class AgenciesWithRawResponse:
    def __init__(self, resource: Agencies) -> None:
        self.create = to_raw_response_wrapper(resource.create)
        self.list = to_raw_response_wrapper(resource.list)
        self.create_client = to_raw_response_wrapper(resource.create_client)
        self.disable_client = to_raw_response_wrapper(resource.disable_client)


class AsyncAgenciesWithRawResponse:
    def __init__(self, resource: AsyncAgencies) -> None:
        self.create = async_to_raw_response_wrapper(resource.create)
        self.list = async_to_raw_response_wrapper(resource.list)
        self.create_client = async_to_raw_response_wrapper(resource.create_client)
        self.disable_client = async_to_raw_response_wrapper(resource.disable_client)
