from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.core import clock, params
from api.core.pagination import Keyset, Page
from api.core.text import SafeText
from models import FollowUpAction, NoticeStatus, ReturnType, Sex, TraffickingStatus

MAX_RETURNEES = 1000


class NoticeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "district": "61.07", "returnee_ids": ["0b5c9f3e-7a41-4f0e-9d1c-2a6f8e4b7c10"],
        "summary": "3 returnees deported through PLBN Jagoi Babang", "arrival_date": "2025-07-01",
        "entry_point": "PLBN Jagoi Babang"}]})

    district: str = Field(examples=["61.07"], description="district-level region code the notice is addressed to")
    returnee_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_RETURNEES)
    summary: SafeText | None = Field(default=None, max_length=2000)
    arrival_date: date | None = None
    entry_point: SafeText | None = Field(default=None, max_length=200, examples=["PLBN Jagoi Babang"])

    _district = field_validator("district")(params.district)

    @field_validator("returnee_ids")
    @classmethod
    def _unique(cls, v: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(v)) != len(v):
            raise ValueError("returnee ids must not repeat")
        return v


# The province's calendar: Kalimantan Barat keeps West Indonesia Time (WIB, UTC+7, no DST).
WIB = timezone(timedelta(hours=7), "WIB")


def today_in_kalbar() -> date:
    """Today's date where the agencies are (WIB), from the service clock: at 06:00 UTC it is
    already 13:00 of the same day there, at 20:00 UTC already the next day."""
    return clock.now().astimezone(WIB).date()


class FollowUpCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "action": "home_visit", "note": "visited the family in Jagoi Babang", "occurred_on": "2025-07-08"}]})

    action: FollowUpAction
    note: SafeText | None = Field(default=None, max_length=2000)
    occurred_on: date = Field(description="the day it was done; not after today in West Indonesia Time (UTC+7)")

    @field_validator("occurred_on")
    @classmethod
    def _done(cls, v: date) -> date:
        """A follow-up records what was done: a date after today (WIB) is refused."""
        today = today_in_kalbar()
        if v > today:
            raise ValueError(f"occurred_on is after today ({today.isoformat()} in West Indonesia Time): "
                             "record a follow-up once it has happened")
        return v


class FollowUpPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    notice_id: uuid.UUID
    action: FollowUpAction
    note: str | None
    occurred_on: date
    recorded_by: str
    created_at: datetime


class NoticeReturneePublic(BaseModel):
    """A returnee as a notice shows it: enough to act on, no identity numbers."""

    id: uuid.UUID
    name: str
    sex: Sex
    origin_subdistrict: str | None
    return_type: ReturnType
    return_date: date
    trafficking_status: TraffickingStatus


class NoticeSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    district: str
    issued_by: str
    summary: str | None
    arrival_date: date | None
    entry_point: str | None
    returnee_count: int
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    status: NoticeStatus = Field(description="`waiting_for_agency`: addressed to a district of another province "
                                 "where no agency is registered yet; delivered when one is")
    delivered_at: datetime | None


class NoticePublic(NoticeSummary):
    returnee_ids: list[uuid.UUID]
    returnees: list[NoticeReturneePublic]
    follow_ups: list[FollowUpPublic]


class NoticeList(Page[NoticeSummary]):
    pass


NOTICES = Keyset("notices", (datetime, uuid.UUID))  # by (created_at, id), newest first
NOTICE_CHANGES = Keyset("notices:changes", (int,))  # by change_pos: the sync order
