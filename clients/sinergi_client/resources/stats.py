"""``/v1/stats``: counts with small cells suppressed, as JSON or CSV."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cached_property
from typing import Any, Unpack

from sinergi_client._base_client import RequestOptions
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import ReferralReason, ReferralStatus, ReturnType, Stats, TraffickingStatus, Urgency

CSV = {"Accept": "text/csv"}


def _returnees(group_by: Sequence[str] | None, threshold: int | None, from_: date | None, to: date | None,
               district: str | None, return_type: ReturnType | None,
               trafficking_status: TraffickingStatus | None) -> dict[str, Any]:
    return {"group_by": list(group_by) if group_by else None, "threshold": threshold, "from": from_, "to": to,
            "district": district, "return_type": return_type, "trafficking_status": trafficking_status}


def _referrals(group_by: Sequence[str] | None, threshold: int | None, from_: date | None, to: date | None,
               status: ReferralStatus | None, to_agency: str | None, reason: ReferralReason | None,
               urgency: Urgency | None, district: str | None, open: bool | None) -> dict[str, Any]:
    return {"group_by": list(group_by) if group_by else None, "threshold": threshold, "from": from_, "to": to,
            "status": status, "to_agency": to_agency, "reason": reason, "urgency": urgency, "district": district,
            "open": open}


class Statistics(SyncResource):
    @cached_property
    def with_raw_response(self) -> StatisticsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return StatisticsWithRawResponse(self)

    def returnees(self, *, group_by: Sequence[str] | None = None, threshold: int | None = None,
                  from_: date | None = None, to: date | None = None, district: str | None = None,
                  return_type: ReturnType | None = None, trafficking_status: TraffickingStatus | None = None,
                  **options: Unpack[RequestOptions]) -> Stats:
        params = _returnees(group_by, threshold, from_, to, district, return_type, trafficking_status)
        return self._client.get("/v1/stats/returnees", Stats, params=params, options=options)

    def returnees_csv(self, *, group_by: Sequence[str] | None = None, threshold: int | None = None,
                      from_: date | None = None, to: date | None = None, district: str | None = None,
                      return_type: ReturnType | None = None, trafficking_status: TraffickingStatus | None = None,
                      **options: Unpack[RequestOptions]) -> str:
        params = _returnees(group_by, threshold, from_, to, district, return_type, trafficking_status)
        return self._client.send("GET", "/v1/stats/returnees", params=params, headers=CSV, options=options).text

    def referrals(self, *, group_by: Sequence[str] | None = None, threshold: int | None = None,
                  from_: date | None = None, to: date | None = None, status: ReferralStatus | None = None,
                  to_agency: str | None = None, reason: ReferralReason | None = None, urgency: Urgency | None = None,
                  district: str | None = None, open: bool | None = None,
                  **options: Unpack[RequestOptions]) -> Stats:
        params = _referrals(group_by, threshold, from_, to, status, to_agency, reason, urgency, district, open)
        return self._client.get("/v1/stats/referrals", Stats, params=params, options=options)

    def referrals_csv(self, *, group_by: Sequence[str] | None = None, threshold: int | None = None,
                      from_: date | None = None, to: date | None = None, status: ReferralStatus | None = None,
                      to_agency: str | None = None, reason: ReferralReason | None = None,
                      urgency: Urgency | None = None, district: str | None = None, open: bool | None = None,
                      **options: Unpack[RequestOptions]) -> str:
        params = _referrals(group_by, threshold, from_, to, status, to_agency, reason, urgency, district, open)
        return self._client.send("GET", "/v1/stats/referrals", params=params, headers=CSV, options=options).text


class AsyncStatistics(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncStatisticsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncStatisticsWithRawResponse(self)

    async def returnees(self, *, group_by: Sequence[str] | None = None, threshold: int | None = None,
                        from_: date | None = None, to: date | None = None, district: str | None = None,
                        return_type: ReturnType | None = None, trafficking_status: TraffickingStatus | None = None,
                        **options: Unpack[RequestOptions]) -> Stats:
        params = _returnees(group_by, threshold, from_, to, district, return_type, trafficking_status)
        return await self._client.get("/v1/stats/returnees", Stats, params=params, options=options)

    async def returnees_csv(self, *, group_by: Sequence[str] | None = None, threshold: int | None = None,
                            from_: date | None = None, to: date | None = None, district: str | None = None,
                            return_type: ReturnType | None = None,
                            trafficking_status: TraffickingStatus | None = None,
                            **options: Unpack[RequestOptions]) -> str:
        params = _returnees(group_by, threshold, from_, to, district, return_type, trafficking_status)
        reply = await self._client.send("GET", "/v1/stats/returnees", params=params, headers=CSV, options=options)
        return reply.text

    async def referrals(self, *, group_by: Sequence[str] | None = None, threshold: int | None = None,
                        from_: date | None = None, to: date | None = None, status: ReferralStatus | None = None,
                        to_agency: str | None = None, reason: ReferralReason | None = None,
                        urgency: Urgency | None = None, district: str | None = None, open: bool | None = None,
                        **options: Unpack[RequestOptions]) -> Stats:
        params = _referrals(group_by, threshold, from_, to, status, to_agency, reason, urgency, district, open)
        return await self._client.get("/v1/stats/referrals", Stats, params=params, options=options)

    async def referrals_csv(self, *, group_by: Sequence[str] | None = None, threshold: int | None = None,
                            from_: date | None = None, to: date | None = None, status: ReferralStatus | None = None,
                            to_agency: str | None = None, reason: ReferralReason | None = None,
                            urgency: Urgency | None = None, district: str | None = None, open: bool | None = None,
                      **options: Unpack[RequestOptions]) -> str:
        params = _referrals(group_by, threshold, from_, to, status, to_agency, reason, urgency, district, open)
        reply = await self._client.send("GET", "/v1/stats/referrals", params=params, headers=CSV, options=options)
        return reply.text


class StatisticsWithRawResponse:
    def __init__(self, resource: Statistics) -> None:
        self.returnees = to_raw_response_wrapper(resource.returnees)
        self.returnees_csv = to_raw_response_wrapper(resource.returnees_csv)
        self.referrals = to_raw_response_wrapper(resource.referrals)
        self.referrals_csv = to_raw_response_wrapper(resource.referrals_csv)


class AsyncStatisticsWithRawResponse:
    def __init__(self, resource: AsyncStatistics) -> None:
        self.returnees = async_to_raw_response_wrapper(resource.returnees)
        self.returnees_csv = async_to_raw_response_wrapper(resource.returnees_csv)
        self.referrals = async_to_raw_response_wrapper(resource.referrals)
        self.referrals_csv = async_to_raw_response_wrapper(resource.referrals_csv)
