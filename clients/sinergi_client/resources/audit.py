"""``/v1/audit``: the audit chain, its verification and signed checkpoints."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any, Unpack

from sinergi_client._base_client import AsyncPager, RequestOptions, SyncPage
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import AuditEvent, AuditVerification, Checkpoint


def _params(actor: str | None, agency: str | None, resource_type: str | None, resource_id: str | None,
            action: str | None, from_: datetime | None, to: datetime | None, chain: str | None,
            limit: int | None, cursor: str | None) -> dict[str, Any]:
    return {"actor": actor, "agency": agency, "resource_type": resource_type, "resource_id": resource_id,
            "action": action, "from": from_, "to": to, "chain": chain, "limit": limit, "cursor": cursor}


class Audit(SyncResource):
    @cached_property
    def with_raw_response(self) -> AuditWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AuditWithRawResponse(self)

    def list(self, *, actor: str | None = None, agency: str | None = None, resource_type: str | None = None,
             resource_id: str | None = None, action: str | None = None, from_: datetime | None = None,
             to: datetime | None = None, chain: str | None = None, limit: int | None = None,
             cursor: str | None = None, **options: Unpack[RequestOptions]) -> SyncPage[AuditEvent]:
        params = _params(actor, agency, resource_type, resource_id, action, from_, to, chain, limit, cursor)
        return self._client.page("/v1/audit", AuditEvent, params=params, options=options)

    def verify(self, *, chain: str | None = None, checkpoint: str | None = None,
               **options: Unpack[RequestOptions]) -> AuditVerification:
        return self._client.get("/v1/audit/verify", AuditVerification,
                                params={"chain": chain, "checkpoint": checkpoint}, options=options)

    def checkpoint(self, *, chain: str | None = None, **options: Unpack[RequestOptions]) -> Checkpoint:
        return self._client.get("/v1/audit/checkpoint", Checkpoint, params={"chain": chain}, options=options)


class AsyncAudit(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncAuditWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncAuditWithRawResponse(self)

    def list(self, *, actor: str | None = None, agency: str | None = None, resource_type: str | None = None,
             resource_id: str | None = None, action: str | None = None, from_: datetime | None = None,
             to: datetime | None = None, chain: str | None = None, limit: int | None = None,
             cursor: str | None = None, **options: Unpack[RequestOptions]) -> AsyncPager[AuditEvent]:
        params = _params(actor, agency, resource_type, resource_id, action, from_, to, chain, limit, cursor)
        return self._client.page("/v1/audit", AuditEvent, params=params, options=options)

    async def verify(self, *, chain: str | None = None, checkpoint: str | None = None,
                     **options: Unpack[RequestOptions]) -> AuditVerification:
        return await self._client.get("/v1/audit/verify", AuditVerification,
                                      params={"chain": chain, "checkpoint": checkpoint}, options=options)

    async def checkpoint(self, *, chain: str | None = None, **options: Unpack[RequestOptions]) -> Checkpoint:
        return await self._client.get("/v1/audit/checkpoint", Checkpoint, params={"chain": chain}, options=options)


class AuditWithRawResponse:
    def __init__(self, resource: Audit) -> None:
        self.list = to_raw_response_wrapper(resource.list)
        self.verify = to_raw_response_wrapper(resource.verify)
        self.checkpoint = to_raw_response_wrapper(resource.checkpoint)


class AsyncAuditWithRawResponse:
    def __init__(self, resource: AsyncAudit) -> None:
        self.list = async_to_raw_response_wrapper(resource.list)
        self.verify = async_to_raw_response_wrapper(resource.verify)
        self.checkpoint = async_to_raw_response_wrapper(resource.checkpoint)
