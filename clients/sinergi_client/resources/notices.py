"""``/v1/notices``: deportation notices, their acknowledgement (``If-Match``) and follow-ups."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from functools import cached_property
from typing import Unpack

from sinergi_client._base_client import AsyncPager, RequestOptions, SyncPage
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import (
    FollowUp,
    FollowUpAction,
    FollowUpCreate,
    Notice,
    NoticeCreate,
    NoticeStatus,
    NoticeSummary,
)

NoticeRef = Notice | NoticeSummary | str | uuid.UUID


def _if_match(tag: str | None) -> dict[str, str] | None:
    return {"If-Match": tag} if tag else None


def _id(notice: NoticeRef) -> str:
    return str(notice.id) if isinstance(notice, NoticeSummary) else str(notice)


class Notices(SyncResource):
    @cached_property
    def with_raw_response(self) -> NoticesWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return NoticesWithRawResponse(self)

    def create(self, *, district: str, returnee_ids: Sequence[str | uuid.UUID], summary: str | None = None,
               arrival_date: date | None = None, entry_point: str | None = None,
               **options: Unpack[RequestOptions]) -> Notice:
        body = NoticeCreate(district=district, returnee_ids=[uuid.UUID(str(i)) for i in returnee_ids],
                            summary=summary, arrival_date=arrival_date, entry_point=entry_point)
        return self._client.post("/v1/notices", Notice, body=body.body(), options=options)

    def list(self, *, acknowledged: bool | None = None, district: str | None = None,
             status: NoticeStatus | None = None, sort: str | None = None,
             limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> SyncPage[NoticeSummary]:
        params = {"acknowledged": acknowledged, "district": district, "status": status, "sort": sort, "limit": limit,
                  "cursor": cursor}
        return self._client.page("/v1/notices", NoticeSummary, params=params, options=options)

    def get(self, id: str | uuid.UUID, **options: Unpack[RequestOptions]) -> Notice:
        return self._client.get(f"/v1/notices/{id}", Notice, options=options)

    def acknowledge(self, notice: NoticeRef, *, etag: str | None = None,
                    **options: Unpack[RequestOptions]) -> Notice:
        """Acknowledge with the ETag the notice was read with (read first when it is not known)."""
        tag = etag or (notice.etag if isinstance(notice, NoticeSummary) else None) or self.get(_id(notice)).etag
        return self._client.post(f"/v1/notices/{_id(notice)}/acknowledge", Notice, headers=_if_match(tag),
                                 options=options)

    def follow_up(self, notice: NoticeRef, *, action: FollowUpAction, occurred_on: date, note: str | None = None,
                  **options: Unpack[RequestOptions]) -> FollowUp:
        body = FollowUpCreate(action=action, occurred_on=occurred_on, note=note)
        return self._client.post(f"/v1/notices/{_id(notice)}/follow-ups", FollowUp, body=body.body(),
                                 options=options)


class AsyncNotices(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncNoticesWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncNoticesWithRawResponse(self)

    async def create(self, *, district: str, returnee_ids: Sequence[str | uuid.UUID], summary: str | None = None,
                     arrival_date: date | None = None, entry_point: str | None = None,
                     **options: Unpack[RequestOptions]) -> Notice:
        body = NoticeCreate(district=district, returnee_ids=[uuid.UUID(str(i)) for i in returnee_ids],
                            summary=summary, arrival_date=arrival_date, entry_point=entry_point)
        return await self._client.post("/v1/notices", Notice, body=body.body(), options=options)

    def list(self, *, acknowledged: bool | None = None, district: str | None = None,
             status: NoticeStatus | None = None, sort: str | None = None,
             limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> AsyncPager[NoticeSummary]:
        params = {"acknowledged": acknowledged, "district": district, "status": status, "sort": sort, "limit": limit,
                  "cursor": cursor}
        return self._client.page("/v1/notices", NoticeSummary, params=params, options=options)

    async def get(self, id: str | uuid.UUID, **options: Unpack[RequestOptions]) -> Notice:
        return await self._client.get(f"/v1/notices/{id}", Notice, options=options)

    async def acknowledge(self, notice: NoticeRef, *, etag: str | None = None,
                          **options: Unpack[RequestOptions]) -> Notice:
        tag = etag or (notice.etag if isinstance(notice, NoticeSummary) else None)
        if not tag:
            tag = (await self.get(_id(notice))).etag
        return await self._client.post(f"/v1/notices/{_id(notice)}/acknowledge", Notice,
                                       headers=_if_match(tag), options=options)

    async def follow_up(self, notice: NoticeRef, *, action: FollowUpAction, occurred_on: date,
                        note: str | None = None, **options: Unpack[RequestOptions]) -> FollowUp:
        body = FollowUpCreate(action=action, occurred_on=occurred_on, note=note)
        return await self._client.post(f"/v1/notices/{_id(notice)}/follow-ups", FollowUp, body=body.body(),
                                       options=options)


class NoticesWithRawResponse:
    def __init__(self, resource: Notices) -> None:
        self.create = to_raw_response_wrapper(resource.create)
        self.list = to_raw_response_wrapper(resource.list)
        self.get = to_raw_response_wrapper(resource.get)
        self.acknowledge = to_raw_response_wrapper(resource.acknowledge)
        self.follow_up = to_raw_response_wrapper(resource.follow_up)


class AsyncNoticesWithRawResponse:
    def __init__(self, resource: AsyncNotices) -> None:
        self.create = async_to_raw_response_wrapper(resource.create)
        self.list = async_to_raw_response_wrapper(resource.list)
        self.get = async_to_raw_response_wrapper(resource.get)
        self.acknowledge = async_to_raw_response_wrapper(resource.acknowledge)
        self.follow_up = async_to_raw_response_wrapper(resource.follow_up)
