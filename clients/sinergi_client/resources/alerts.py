"""``/v1/alerts``: recruitment reports and the alerts they raise; ``/v1/public/warnings``.

An agency reports an illegal recruitment (``report``, ``alerts:write``): the modus, where, the
route, the recruiter's identifiers (stored only encrypted: the reply gives back their kinds)
and the returnees who named the recruiter. An identifier reported by enough independent
agencies raises an alert for the police and the task force over its places (``list``, ``get``,
``alerts:read``). The public warning list (``warnings``) needs no token: a client made without
credentials (``Sinergi(base_url)``) reads it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cached_property
from typing import Any, Unpack

from sinergi_client._base_client import AsyncPager, RequestOptions, SyncPage
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import (
    Alert,
    NamedByIn,
    PublicWarning,
    RecruiterIdentifier,
    RecruitmentModus,
    RecruitmentReport,
    RecruitmentReportCreate,
)

AlertRef = Alert | str | uuid.UUID
Identifier = RecruiterIdentifier | Mapping[str, Any]
# a returnee's id (the relation then ``unknown``), or one with the recruiter's relation to them
Named = NamedByIn | Mapping[str, Any] | str | uuid.UUID


def _named(n: Named) -> NamedByIn:
    if isinstance(n, NamedByIn):
        return n
    if isinstance(n, Mapping):
        return NamedByIn.model_validate(n)
    return NamedByIn(returnee_id=uuid.UUID(str(n)))


def _report_body(modus: RecruitmentModus, region: str, route: Sequence[str] | None, places: Sequence[str] | None,
                 place_note: str | None, destination_country: str | None, observed_on: date | None,
                 identifiers: Sequence[Identifier] | None, named_by: Sequence[Named] | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"modus": modus, "region": region}
    optional: dict[str, Any] = {
        "route": list(route) if route is not None else None,
        "places": list(places) if places is not None else None,
        "place_note": place_note, "destination_country": destination_country, "observed_on": observed_on,
        "identifiers": [i if isinstance(i, RecruiterIdentifier) else RecruiterIdentifier.model_validate(i)
                        for i in identifiers] if identifiers is not None else None,
        "named_by": [_named(n) for n in named_by] if named_by is not None else None,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    return RecruitmentReportCreate.model_validate(fields).body()


def _id(alert: AlertRef) -> str:
    return str(alert.id) if isinstance(alert, Alert) else str(alert)


class Alerts(SyncResource):
    @cached_property
    def with_raw_response(self) -> AlertsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AlertsWithRawResponse(self)

    def report(self, *, modus: RecruitmentModus, region: str, route: Sequence[str] | None = None,
               places: Sequence[str] | None = None, place_note: str | None = None,
               destination_country: str | None = None, observed_on: date | None = None,
               identifiers: Sequence[Identifier] | None = None, named_by: Sequence[Named] | None = None,
               **options: Unpack[RequestOptions]) -> RecruitmentReport:
        """Report a recruitment at ``region`` (a region code the agency may write for);
        ``identifiers``: ``{"kind": "phone" | "social_media" | "vehicle_plate", "value": ...}``."""
        body = _report_body(modus, region, route, places, place_note, destination_country, observed_on, identifiers,
                            named_by)
        return self._client.post("/v1/alerts/reports", RecruitmentReport, body=body, options=options)

    def list(self, *, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> SyncPage[Alert]:
        """The alerts over the caller's jurisdiction, newest first."""
        return self._client.page("/v1/alerts", Alert, params={"limit": limit, "cursor": cursor}, options=options)

    def get(self, alert: AlertRef, **options: Unpack[RequestOptions]) -> Alert:
        return self._client.get(f"/v1/alerts/{_id(alert)}", Alert, options=options)

    def warnings(self, *, limit: int | None = None, cursor: str | None = None,
                 **options: Unpack[RequestOptions]) -> SyncPage[PublicWarning]:
        """The public warning list (no token needed): modus and places, never a person."""
        return self._client.page("/v1/public/warnings", PublicWarning, params={"limit": limit, "cursor": cursor},
                                 options=options)


class AsyncAlerts(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncAlertsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncAlertsWithRawResponse(self)

    async def report(self, *, modus: RecruitmentModus, region: str, route: Sequence[str] | None = None,
                     places: Sequence[str] | None = None, place_note: str | None = None,
                     destination_country: str | None = None, observed_on: date | None = None,
                     identifiers: Sequence[Identifier] | None = None, named_by: Sequence[Named] | None = None,
                     **options: Unpack[RequestOptions]) -> RecruitmentReport:
        body = _report_body(modus, region, route, places, place_note, destination_country, observed_on, identifiers,
                            named_by)
        return await self._client.post("/v1/alerts/reports", RecruitmentReport, body=body, options=options)

    def list(self, *, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> AsyncPager[Alert]:
        return self._client.page("/v1/alerts", Alert, params={"limit": limit, "cursor": cursor}, options=options)

    async def get(self, alert: AlertRef, **options: Unpack[RequestOptions]) -> Alert:
        return await self._client.get(f"/v1/alerts/{_id(alert)}", Alert, options=options)

    def warnings(self, *, limit: int | None = None, cursor: str | None = None,
                 **options: Unpack[RequestOptions]) -> AsyncPager[PublicWarning]:
        return self._client.page("/v1/public/warnings", PublicWarning, params={"limit": limit, "cursor": cursor},
                                 options=options)


class AlertsWithRawResponse:
    def __init__(self, resource: Alerts) -> None:
        self.report = to_raw_response_wrapper(resource.report)
        self.list = to_raw_response_wrapper(resource.list)
        self.get = to_raw_response_wrapper(resource.get)
        self.warnings = to_raw_response_wrapper(resource.warnings)


class AsyncAlertsWithRawResponse:
    def __init__(self, resource: AsyncAlerts) -> None:
        self.report = async_to_raw_response_wrapper(resource.report)
        self.list = async_to_raw_response_wrapper(resource.list)
        self.get = async_to_raw_response_wrapper(resource.get)
        self.warnings = async_to_raw_response_wrapper(resource.warnings)
