from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from api.core.pagination import Keyset, Page
from api.core.text import SafeText
from models import DeliveryStatus, WebhookStatus

# The event types a subscription may name (the families of the feed, api/events).
EventType = Literal[
    "returnee.created",
    "returnee.updated",
    "notice.created",
    "notice.acknowledged",
    "notice.follow_up_recorded",
    "referral.requested",
    "referral.status_changed",
    "notice.delivered",
    "manifest.created",
    "manifest.announced",
    "manifest.person_arrived",
    "manifest.person_not_arrived",
    "manifest.person_located",
    "manifest.person_not_located",
    "departure.created",
    "departure.updated",
    "register.repeat_return",
    "alert.raised",
    "alert.updated",
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "url": "https://sim.polres-bengkayang.example/sinergi/webhooks",
        "event_types": ["referral.requested", "referral.status_changed"],
        "description": "referral inbox of the case system",
    }]})

    url: str = Field(min_length=8, max_length=2000, description="http(s) URL on a public address; redirects are "
                     "not followed")
    event_types: list[EventType] = Field(min_length=1, max_length=32)
    description: SafeText = Field(default="", max_length=200)

    @field_validator("event_types")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return sorted(set(v))


class WebhookPublic(BaseModel):
    id: uuid.UUID
    agency: str
    url: str
    event_types: list[str]
    description: str
    status: WebhookStatus
    disabled_reason: str | None = Field(description="why it was disabled: `410 Gone`, or its retry budget spent")
    disabled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="the signing secret (`whsec_…`, Standard Webhooks v1); shown once, kept "
                        "encrypted")


class WebhookList(Page[WebhookPublic]):
    pass


class AttemptPublic(BaseModel):
    attempt: int
    started_at: datetime
    status_code: int | None = Field(description="the receiver's status; null when no reply came")
    latency_ms: int | None
    error: str | None
    next_attempt_at: datetime | None = Field(description="when it is tried again after this attempt (null: not)")


class DeliveryPublic(BaseModel):
    id: str = Field(description="the `webhook-id` header of every attempt")
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="when it is tried next (pending only)")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptPublic] = Field(description="every attempt, first to last")


class DeliveryList(Page[DeliveryPublic]):
    pass


WEBHOOKS = Keyset("webhooks", (datetime, uuid.UUID))  # by (created_at, id), newest first
DELIVERIES = Keyset("webhook-deliveries", (datetime, uuid.UUID))  # by (created_at, id), newest first


# --- what a subscriber receives (documented under `webhooks` in the OpenAPI document) --------


class ReturneeEventData(BaseModel):
    id: uuid.UUID
    source_ref: str
    origin_district: str
    trafficking_status: str


class NoticeCreatedData(BaseModel):
    id: uuid.UUID
    district: str
    issued_by: str
    returnee_count: int


class NoticeAcknowledgedData(BaseModel):
    id: uuid.UUID
    district: str
    acknowledged_by: str
    acknowledged_at: datetime


class NoticeFollowUpData(BaseModel):
    id: uuid.UUID
    follow_up_id: uuid.UUID
    district: str
    action: str
    recorded_by: str


class ReferralRequestedData(BaseModel):
    id: uuid.UUID
    from_agency: str
    to_agency: str
    reason: str
    urgency: str
    due_at: datetime
    status: str


class ReferralStatusChangedData(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    from_: str = Field(alias="from")
    to: str
    action: str
    from_agency: str
    to_agency: str


class FeedEventData(BaseModel):
    """The ``data`` of the event exactly as the feed (``GET /v1/events``) carries it."""

    model_config = ConfigDict(extra="allow")


EVENT_DATA: dict[str, tuple[type[BaseModel], str]] = {
    "returnee.created": (ReturneeEventData, "a returnee record was pushed for the first time"),
    "returnee.updated": (ReturneeEventData, "a returnee record changed on a re-push"),
    "notice.created": (NoticeCreatedData, "a deportation notice was issued to a district"),
    "notice.acknowledged": (NoticeAcknowledgedData, "the addressed district acknowledged a notice"),
    "notice.follow_up_recorded": (NoticeFollowUpData, "the addressed district recorded a follow-up"),
    "referral.requested": (ReferralRequestedData, "a case was referred (to or by the subscriber's agency)"),
    "referral.status_changed": (ReferralStatusChangedData, "a referral moved through its states"),
    "notice.delivered": (FeedEventData, "a notice that waited for an agency of its district was delivered to it"),
    "manifest.created": (FeedEventData, "BP3MI registered an announced deportation (the consulate's letter)"),
    "manifest.announced": (FeedEventData, "people of the district are expected at the border"),
    "manifest.person_arrived": (FeedEventData, "a person of a manifest arrived at the border"),
    "manifest.person_not_arrived": (FeedEventData, "a person of a manifest did not arrive"),
    "manifest.person_located": (FeedEventData, "the home district located a person who arrived"),
    "manifest.person_not_located": (FeedEventData, "the home district could not locate a person who arrived"),
    "departure.created": (FeedEventData, "a departure was recorded in the register of migrant workers"),
    "departure.updated": (FeedEventData, "a departure record changed on a re-push"),
    "register.repeat_return": (FeedEventData, "a person of the register came back for the second time or more"),
    "alert.raised": (FeedEventData, "a recruiter identifier was reported by enough independent agencies"),
    "alert.updated": (FeedEventData, "a further agency reported an identifier already alerted"),
}


def event_body_model(event_type: str) -> type[BaseModel]:
    """The body posted for ``event_type``: the feed's event, ``data`` typed."""
    data_model, _ = EVENT_DATA[event_type]
    name = "".join(p.title() for p in event_type.replace("_", ".").split(".")) + "Event"
    fields: dict[str, Any] = {
        "id": (uuid.UUID, Field(description="the event's id (the same in the feed)")),
        "type": (Literal[event_type], ...),
        "occurred_at": (datetime, ...),
        "data": (data_model, ...),
    }
    return create_model(name, **fields)
