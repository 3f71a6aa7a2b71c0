"""Deportation notices: the province tells a district "these returnees of yours arrived".

One notice is addressed to one district and lists its returnees; the district acknowledges it
and records what it did about it (follow-ups).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import new_id, ts_column, utcnow
from models.columns import str_enum


class FollowUpAction(StrEnum):
    home_visit = "home_visit"
    reintegration = "reintegration"
    referral_made = "referral_made"
    counselling = "counselling"
    other = "other"


class NoticeStatus(StrEnum):
    """Whether the addressed district can see the notice yet: a notice to the home district of a
    person of another province waits until an agency of that region is registered."""

    delivered = "delivered"
    waiting_for_agency = "waiting_for_agency"


class Notice(SQLModel, table=True):
    __tablename__ = "notice"
    __table_args__ = (
        # the district's inbox, newest first (keyset pagination on created_at, id)
        sa.Index("ix_notice_district_created", "district", "created_at", "id"),
        sa.Index("ix_notice_change_pos", "change_pos", unique=True),  # the sync order (sort=changes)
        sa.Index("ix_notice_status_district", "status", "district"),  # what waits, and for whom
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    district: str = Field(max_length=16)
    issued_by: str = Field(foreign_key="agency.code", max_length=64, index=True)
    summary: str | None = Field(default=None, max_length=2000)
    arrival_date: date | None = None
    entry_point: str | None = Field(default=None, max_length=200)
    returnee_count: int = Field(default=0)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    acknowledged_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    acknowledged_by: str | None = Field(default=None, foreign_key="agency.code", max_length=64)
    status: NoticeStatus = Field(default=NoticeStatus.delivered, sa_type=str_enum(NoticeStatus, 24),
                                 sa_column_kwargs={"server_default": NoticeStatus.delivered.value})
    delivered_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    # Position of the notice's last change in commit order (api/core/changes.py).
    change_pos: int | None = Field(default=None, sa_type=sa.BigInteger)


class NoticeReturnee(SQLModel, table=True):
    """A returnee listed on a notice."""

    __tablename__ = "notice_returnee"

    notice_id: uuid.UUID = Field(foreign_key="notice.id", primary_key=True)
    returnee_id: uuid.UUID = Field(foreign_key="returnee.id", primary_key=True, index=True)


class NoticeFollowUp(SQLModel, table=True):
    """What the district did about a notice (home visit, reintegration, referral made...)."""

    __tablename__ = "notice_follow_up"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    notice_id: uuid.UUID = Field(foreign_key="notice.id", index=True)
    action: FollowUpAction = Field(sa_type=str_enum(FollowUpAction, 32))
    note: str | None = Field(default=None, max_length=2000)
    occurred_on: date
    recorded_by: str = Field(foreign_key="agency.code", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
