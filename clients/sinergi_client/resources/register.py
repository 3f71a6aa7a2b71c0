"""``/v1/register``: departures of migrant workers, the district's persons, their protected counts.

Departures are pushed in batches keyed by the sender's ``source_ref``, as returnees are: each
record gets its own result, a bad one is ``rejected`` alone. A record with an NIK is the same
person (``person_id``) as that NIK's returnee records.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Literal, Unpack

from sinergi_client._base_client import AsyncPager, RequestOptions, SyncPage
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import (
    DepartureBatchResult,
    DepartureRecord,
    RegisterCounts,
    RegisterPerson,
    RegisterPersonDetail,
    RegisterStatus,
)

Departure = DepartureRecord | Mapping[str, Any]
PersonRef = RegisterPerson | str | uuid.UUID
CountsBy = Literal["subdistrict", "village"]


def _records(records: Sequence[Departure]) -> dict[str, Any]:
    # Plain mappings are sent as they are: the server checks each record on its own and
    # rejects only the bad ones (a client-side check would refuse the whole batch).
    return {"records": [r.body() if isinstance(r, DepartureRecord) else dict(r) for r in records]}


def _person_path(person: PersonRef) -> str:
    return f"/v1/register/persons/{person.person_id if isinstance(person, RegisterPerson) else person}"


def _persons_params(region: str | None, status: RegisterStatus | None, repeat_return: bool | None,
                    limit: int | None, cursor: str | None) -> dict[str, Any]:
    return {"region": region, "status": status, "repeat_return": repeat_return, "limit": limit, "cursor": cursor}


def _counts_params(district: str, by: CountsBy | None, threshold: int | None) -> dict[str, Any]:
    return {"district": district, "by": by, "threshold": threshold}


class Register(SyncResource):
    @cached_property
    def with_raw_response(self) -> RegisterWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return RegisterWithRawResponse(self)

    def push_departures(self, records: Sequence[Departure],
                        **options: Unpack[RequestOptions]) -> DepartureBatchResult:
        """Create or update up to 1,000 departure records. Pass ``idempotency_key`` (e.g. file and
        batch number) to make a re-run of the same push a replay."""
        return self._client.post("/v1/register/departures/batch", DepartureBatchResult, body=_records(records),
                                 options=options)

    def persons(self, *, region: str | None = None, status: RegisterStatus | None = None,
                repeat_return: bool | None = None, limit: int | None = None, cursor: str | None = None,
                **options: Unpack[RequestOptions]) -> SyncPage[RegisterPerson]:
        """The register's persons of the caller's jurisdiction; ``region``: their origin (a
        district, sub-district or village code)."""
        return self._client.page("/v1/register/persons", RegisterPerson,
                                 params=_persons_params(region, status, repeat_return, limit, cursor), options=options)

    def person(self, person: PersonRef, **options: Unpack[RequestOptions]) -> RegisterPersonDetail:
        """One person, with the departure and returnee records behind it the caller may read."""
        return self._client.get(_person_path(person), RegisterPersonDetail, options=options)

    def counts(self, *, district: str, by: CountsBy | None = None, threshold: int | None = None,
               **options: Unpack[RequestOptions]) -> RegisterCounts:
        """Persons of ``district`` by origin sub-district (default) or village, each figure rounded
        and small ones suppressed as the statistics are (``register:read`` or ``stats:read``)."""
        return self._client.get("/v1/register/counts", RegisterCounts,
                                params=_counts_params(district, by, threshold), options=options)


class AsyncRegister(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncRegisterWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncRegisterWithRawResponse(self)

    async def push_departures(self, records: Sequence[Departure],
                              **options: Unpack[RequestOptions]) -> DepartureBatchResult:
        return await self._client.post("/v1/register/departures/batch", DepartureBatchResult,
                                       body=_records(records), options=options)

    def persons(self, *, region: str | None = None, status: RegisterStatus | None = None,
                repeat_return: bool | None = None, limit: int | None = None, cursor: str | None = None,
                **options: Unpack[RequestOptions]) -> AsyncPager[RegisterPerson]:
        return self._client.page("/v1/register/persons", RegisterPerson,
                                 params=_persons_params(region, status, repeat_return, limit, cursor), options=options)

    async def person(self, person: PersonRef, **options: Unpack[RequestOptions]) -> RegisterPersonDetail:
        return await self._client.get(_person_path(person), RegisterPersonDetail, options=options)

    async def counts(self, *, district: str, by: CountsBy | None = None, threshold: int | None = None,
                     **options: Unpack[RequestOptions]) -> RegisterCounts:
        return await self._client.get("/v1/register/counts", RegisterCounts,
                                      params=_counts_params(district, by, threshold), options=options)


class RegisterWithRawResponse:
    def __init__(self, resource: Register) -> None:
        self.push_departures = to_raw_response_wrapper(resource.push_departures)
        self.persons = to_raw_response_wrapper(resource.persons)
        self.person = to_raw_response_wrapper(resource.person)
        self.counts = to_raw_response_wrapper(resource.counts)


class AsyncRegisterWithRawResponse:
    def __init__(self, resource: AsyncRegister) -> None:
        self.push_departures = async_to_raw_response_wrapper(resource.push_departures)
        self.persons = async_to_raw_response_wrapper(resource.persons)
        self.person = async_to_raw_response_wrapper(resource.person)
        self.counts = async_to_raw_response_wrapper(resource.counts)
