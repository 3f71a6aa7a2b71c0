"""``/v1/referrals``: refer a case, list and read, and move it through its states.

A transition carries the ETag of the version it was decided on (``If-Match``): pass the
referral as read (``client.referrals.accept(referral)``); a ``412`` means it changed since,
read it again and decide again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
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
from sinergi_client.models import (
    ConsentIn,
    ProcessingBasis,
    Referral,
    ReferralAction,
    ReferralCreate,
    ReferralReason,
    ReferralStatus,
    ReferralSummary,
    ReferredReturnee,
    SubjectIn,
    TransitionIn,
    Urgency,
)

ReferralRef = Referral | ReferralSummary | str | uuid.UUID
Role = str  # "sent" | "received"


def _id(referral: ReferralRef) -> str:
    return str(referral.id) if isinstance(referral, ReferralSummary) else str(referral)


def _create_body(to_agency: str, reason: ReferralReason, legal_basis: str, urgency: Urgency | None,
                 returnee_id: str | uuid.UUID | None, subject: SubjectIn | Mapping[str, Any] | None,
                 consent: ConsentIn | Mapping[str, Any] | None, processing_basis: ProcessingBasis | None,
                 sender_ref: str | None, note: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"to_agency": to_agency, "reason": reason, "legal_basis": legal_basis}
    optional: dict[str, Any] = {
        "urgency": urgency, "returnee_id": returnee_id, "processing_basis": processing_basis,
        "sender_ref": sender_ref, "note": note,
        "subject": SubjectIn.model_validate(subject) if isinstance(subject, Mapping) else subject,
        "consent": ConsentIn.model_validate(consent) if isinstance(consent, Mapping) else consent,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    return ReferralCreate.model_validate(fields).body()


def _list_params(role: Role | None, status: ReferralStatus | None, reason: ReferralReason | None,
                 urgency: Urgency | None, overdue: bool | None, updated_since: datetime | None,
                 returnee_id: str | uuid.UUID | None, sort: str | None, limit: int | None,
                 cursor: str | None) -> dict[str, Any]:
    return {"role": role, "status": status, "reason": reason, "urgency": urgency, "overdue": overdue,
            "updated_since": updated_since, "returnee_id": returnee_id, "sort": sort, "limit": limit,
            "cursor": cursor}


def _transition(referral: ReferralRef, action: ReferralAction, note: str | None,
                etag: str | None) -> tuple[str, dict[str, Any], dict[str, str]]:
    tag = etag or (referral.etag if isinstance(referral, ReferralSummary) else None)
    headers = {"If-Match": tag} if tag else {}
    return f"/v1/referrals/{_id(referral)}/transitions", TransitionIn(action=action, note=note).body(), headers


class Referrals(SyncResource):
    @cached_property
    def with_raw_response(self) -> ReferralsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return ReferralsWithRawResponse(self)

    def create(self, *, to_agency: str, reason: ReferralReason, legal_basis: str, urgency: Urgency | None = None,
               returnee_id: str | uuid.UUID | None = None, subject: SubjectIn | Mapping[str, Any] | None = None,
               consent: ConsentIn | Mapping[str, Any] | None = None,
               processing_basis: ProcessingBasis | None = None, sender_ref: str | None = None,
               note: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        body = _create_body(to_agency, reason, legal_basis, urgency, returnee_id, subject, consent, processing_basis,
                            sender_ref, note)
        return self._client.post("/v1/referrals", Referral, body=body, options=options)

    def list(self, *, role: Role | None = None, status: ReferralStatus | None = None,
             reason: ReferralReason | None = None, urgency: Urgency | None = None, overdue: bool | None = None,
             updated_since: datetime | None = None, returnee_id: str | uuid.UUID | None = None,
             sort: str | None = None, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> SyncPage[ReferralSummary]:
        params = _list_params(role, status, reason, urgency, overdue, updated_since, returnee_id, sort, limit, cursor)
        return self._client.page("/v1/referrals", ReferralSummary, params=params, options=options)

    def get(self, id: ReferralRef, **options: Unpack[RequestOptions]) -> Referral:
        return self._client.get(f"/v1/referrals/{_id(id)}", Referral, options=options)

    def returnee(self, referral: ReferralRef, **options: Unpack[RequestOptions]) -> ReferredReturnee:
        return self._client.get(f"/v1/referrals/{_id(referral)}/returnee", ReferredReturnee, options=options)

    def transition(self, referral: ReferralRef, action: ReferralAction, *, note: str | None = None,
                   etag: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        """Move the referral; ``If-Match`` is the referral's ETag (or ``etag``)."""
        path, body, headers = _transition(referral, action, note, etag)
        return self._client.post(path, Referral, body=body, headers=headers, options=options)

    def receive(self, referral: ReferralRef, *, note: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        return self.transition(referral, "receive", note=note, **options)

    def accept(self, referral: ReferralRef, *, note: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        return self.transition(referral, "accept", note=note, **options)

    def reject(self, referral: ReferralRef, *, note: str, **options: Unpack[RequestOptions]) -> Referral:
        return self.transition(referral, "reject", note=note, **options)

    def start(self, referral: ReferralRef, *, note: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        return self.transition(referral, "start", note=note, **options)

    def hold(self, referral: ReferralRef, *, note: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        return self.transition(referral, "hold", note=note, **options)

    def resume(self, referral: ReferralRef, *, note: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        return self.transition(referral, "resume", note=note, **options)

    def complete(self, referral: ReferralRef, *, note: str | None = None,
                 **options: Unpack[RequestOptions]) -> Referral:
        return self.transition(referral, "complete", note=note, **options)

    def fail(self, referral: ReferralRef, *, note: str, **options: Unpack[RequestOptions]) -> Referral:
        return self.transition(referral, "fail", note=note, **options)

    def cancel(self, referral: ReferralRef, *, note: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        return self.transition(referral, "cancel", note=note, **options)


class AsyncReferrals(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncReferralsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncReferralsWithRawResponse(self)

    async def create(self, *, to_agency: str, reason: ReferralReason, legal_basis: str,
                     urgency: Urgency | None = None, returnee_id: str | uuid.UUID | None = None,
                     subject: SubjectIn | Mapping[str, Any] | None = None,
                     consent: ConsentIn | Mapping[str, Any] | None = None,
                     processing_basis: ProcessingBasis | None = None, sender_ref: str | None = None,
                     note: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        body = _create_body(to_agency, reason, legal_basis, urgency, returnee_id, subject, consent, processing_basis,
                            sender_ref, note)
        return await self._client.post("/v1/referrals", Referral, body=body, options=options)

    def list(self, *, role: Role | None = None, status: ReferralStatus | None = None,
             reason: ReferralReason | None = None, urgency: Urgency | None = None, overdue: bool | None = None,
             updated_since: datetime | None = None, returnee_id: str | uuid.UUID | None = None,
             sort: str | None = None, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> AsyncPager[ReferralSummary]:
        params = _list_params(role, status, reason, urgency, overdue, updated_since, returnee_id, sort, limit, cursor)
        return self._client.page("/v1/referrals", ReferralSummary, params=params, options=options)

    async def get(self, id: ReferralRef, **options: Unpack[RequestOptions]) -> Referral:
        return await self._client.get(f"/v1/referrals/{_id(id)}", Referral, options=options)

    async def returnee(self, referral: ReferralRef, **options: Unpack[RequestOptions]) -> ReferredReturnee:
        return await self._client.get(f"/v1/referrals/{_id(referral)}/returnee", ReferredReturnee, options=options)

    async def transition(self, referral: ReferralRef, action: ReferralAction, *, note: str | None = None,
                         etag: str | None = None, **options: Unpack[RequestOptions]) -> Referral:
        path, body, headers = _transition(referral, action, note, etag)
        return await self._client.post(path, Referral, body=body, headers=headers, options=options)

    async def receive(self, referral: ReferralRef, *, note: str | None = None,
                      **options: Unpack[RequestOptions]) -> Referral:
        return await self.transition(referral, "receive", note=note, **options)

    async def accept(self, referral: ReferralRef, *, note: str | None = None,
                     **options: Unpack[RequestOptions]) -> Referral:
        return await self.transition(referral, "accept", note=note, **options)

    async def reject(self, referral: ReferralRef, *, note: str, **options: Unpack[RequestOptions]) -> Referral:
        return await self.transition(referral, "reject", note=note, **options)

    async def start(self, referral: ReferralRef, *, note: str | None = None,
                    **options: Unpack[RequestOptions]) -> Referral:
        return await self.transition(referral, "start", note=note, **options)

    async def hold(self, referral: ReferralRef, *, note: str | None = None,
                   **options: Unpack[RequestOptions]) -> Referral:
        return await self.transition(referral, "hold", note=note, **options)

    async def resume(self, referral: ReferralRef, *, note: str | None = None,
                     **options: Unpack[RequestOptions]) -> Referral:
        return await self.transition(referral, "resume", note=note, **options)

    async def complete(self, referral: ReferralRef, *, note: str | None = None,
                       **options: Unpack[RequestOptions]) -> Referral:
        return await self.transition(referral, "complete", note=note, **options)

    async def fail(self, referral: ReferralRef, *, note: str, **options: Unpack[RequestOptions]) -> Referral:
        return await self.transition(referral, "fail", note=note, **options)

    async def cancel(self, referral: ReferralRef, *, note: str | None = None,
                     **options: Unpack[RequestOptions]) -> Referral:
        return await self.transition(referral, "cancel", note=note, **options)


class ReferralsWithRawResponse:
    def __init__(self, resource: Referrals) -> None:
        self.create = to_raw_response_wrapper(resource.create)
        self.list = to_raw_response_wrapper(resource.list)
        self.get = to_raw_response_wrapper(resource.get)
        self.returnee = to_raw_response_wrapper(resource.returnee)
        self.transition = to_raw_response_wrapper(resource.transition)
        self.receive = to_raw_response_wrapper(resource.receive)
        self.accept = to_raw_response_wrapper(resource.accept)
        self.reject = to_raw_response_wrapper(resource.reject)
        self.start = to_raw_response_wrapper(resource.start)
        self.hold = to_raw_response_wrapper(resource.hold)
        self.resume = to_raw_response_wrapper(resource.resume)
        self.complete = to_raw_response_wrapper(resource.complete)
        self.fail = to_raw_response_wrapper(resource.fail)
        self.cancel = to_raw_response_wrapper(resource.cancel)


class AsyncReferralsWithRawResponse:
    def __init__(self, resource: AsyncReferrals) -> None:
        self.create = async_to_raw_response_wrapper(resource.create)
        self.list = async_to_raw_response_wrapper(resource.list)
        self.get = async_to_raw_response_wrapper(resource.get)
        self.returnee = async_to_raw_response_wrapper(resource.returnee)
        self.transition = async_to_raw_response_wrapper(resource.transition)
        self.receive = async_to_raw_response_wrapper(resource.receive)
        self.accept = async_to_raw_response_wrapper(resource.accept)
        self.reject = async_to_raw_response_wrapper(resource.reject)
        self.start = async_to_raw_response_wrapper(resource.start)
        self.hold = async_to_raw_response_wrapper(resource.hold)
        self.resume = async_to_raw_response_wrapper(resource.resume)
        self.complete = async_to_raw_response_wrapper(resource.complete)
        self.fail = async_to_raw_response_wrapper(resource.fail)
        self.cancel = async_to_raw_response_wrapper(resource.cancel)
