"""``/v1/returnees``: push batches keyed by the sender's ``source_ref``, list, read."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from functools import cached_property
from typing import Any, Unpack

from sinergi_client._base_client import AsyncPager, RequestOptions, SyncPage
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import BatchResult, Returnee, ReturneeRecord, TraffickingStatus

Record = ReturneeRecord | Mapping[str, Any]


def _records(records: Sequence[Record]) -> dict[str, Any]:
    # Plain mappings are sent as they are: the server checks each record on its own and
    # rejects only the bad ones (a client-side check would refuse the whole batch).
    return {"records": [r.body() if isinstance(r, ReturneeRecord) else dict(r) for r in records]}


def _list_params(district: str | None, returned_from: date | None, returned_to: date | None,
                 trafficking_status: TraffickingStatus | None, updated_since: datetime | None, sort: str | None,
                 limit: int | None, cursor: str | None) -> dict[str, Any]:
    return {"district": district, "returned_from": returned_from, "returned_to": returned_to,
            "trafficking_status": trafficking_status, "updated_since": updated_since, "sort": sort,
            "limit": limit, "cursor": cursor}


class Returnees(SyncResource):
    @cached_property
    def with_raw_response(self) -> ReturneesWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return ReturneesWithRawResponse(self)

    def push(self, records: Sequence[Record], *, notify: bool | None = None,
             **options: Unpack[RequestOptions]) -> BatchResult:
        """Upsert up to 1,000 records. Pass ``idempotency_key`` (e.g. file and batch number) to
        make a re-run of the same push a replay."""
        return self._client.post("/v1/returnees/batch", BatchResult, body=_records(records),
                                 params={"notify": notify}, options=options)

    def list(self, *, district: str | None = None, returned_from: date | None = None,
             returned_to: date | None = None, trafficking_status: TraffickingStatus | None = None,
             updated_since: datetime | None = None, sort: str | None = None, limit: int | None = None,
             cursor: str | None = None, **options: Unpack[RequestOptions]) -> SyncPage[Returnee]:
        params = _list_params(district, returned_from, returned_to, trafficking_status, updated_since, sort,
                              limit, cursor)
        return self._client.page("/v1/returnees", Returnee, params=params, options=options)

    def get(self, id: str | uuid.UUID, **options: Unpack[RequestOptions]) -> Returnee:
        return self._client.get(f"/v1/returnees/{id}", Returnee, options=options)


class AsyncReturnees(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncReturneesWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncReturneesWithRawResponse(self)

    async def push(self, records: Sequence[Record], *, notify: bool | None = None,
                   **options: Unpack[RequestOptions]) -> BatchResult:
        return await self._client.post("/v1/returnees/batch", BatchResult, body=_records(records),
                                       params={"notify": notify}, options=options)

    def list(self, *, district: str | None = None, returned_from: date | None = None,
             returned_to: date | None = None, trafficking_status: TraffickingStatus | None = None,
             updated_since: datetime | None = None, sort: str | None = None, limit: int | None = None,
             cursor: str | None = None, **options: Unpack[RequestOptions]) -> AsyncPager[Returnee]:
        params = _list_params(district, returned_from, returned_to, trafficking_status, updated_since, sort,
                              limit, cursor)
        return self._client.page("/v1/returnees", Returnee, params=params, options=options)

    async def get(self, id: str | uuid.UUID, **options: Unpack[RequestOptions]) -> Returnee:
        return await self._client.get(f"/v1/returnees/{id}", Returnee, options=options)


class ReturneesWithRawResponse:
    def __init__(self, resource: Returnees) -> None:
        self.push = to_raw_response_wrapper(resource.push)
        self.list = to_raw_response_wrapper(resource.list)
        self.get = to_raw_response_wrapper(resource.get)


class AsyncReturneesWithRawResponse:
    def __init__(self, resource: AsyncReturnees) -> None:
        self.push = async_to_raw_response_wrapper(resource.push)
        self.list = async_to_raw_response_wrapper(resource.list)
        self.get = async_to_raw_response_wrapper(resource.get)
