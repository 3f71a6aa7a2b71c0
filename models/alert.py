"""Recruitment reports and alerts (modus perekrutan ilegal).

An agency reports what it learnt of a recruitment: the modus, the route and places, the
recruiter's identifiers (phone, social-media handle, vehicle plate: stored only encrypted with a
keyed blind index, ``value_enc`` + ``value_index``), and the returnees who named the recruiter
with their relation to them (HTCDS ``rec_``). When the same identifier (by its blind index) has
been reported by enough independent agencies, a :class:`RecruitmentAlert` is raised.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import AutoString

from models.base import new_id, ts_column, utcnow
from models.columns import str_enum
from models.returnee import RecruiterRelationship


class RecruitmentModus(StrEnum):
    fake_job_offer_social_media = "fake_job_offer_social_media"  # lowongan palsu di media sosial
    visa_free_border_entry = "visa_free_border_entry"  # masuk bebas visa lewat pos lintas batas
    debt_bondage = "debt_bondage"  # jeratan utang
    marriage_offer = "marriage_offer"  # tawaran pernikahan
    other = "other"


class IdentifierKind(StrEnum):
    phone = "phone"
    social_media = "social_media"
    vehicle_plate = "vehicle_plate"


class RecruitmentReport(SQLModel, table=True):
    __tablename__ = "recruitment_report"
    __table_args__ = (sa.Index("ix_recruitment_report_modus_region", "modus", "region"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    reporting_agency: str = Field(foreign_key="agency.code", max_length=64, index=True)
    region: str = Field(sa_type=AutoString(20), description="where the recruitment took place")
    modus: RecruitmentModus = Field(sa_type=str_enum(RecruitmentModus, 40))
    route: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # region codes, in order
    places: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # region codes
    place_note: str | None = Field(default=None, max_length=1000)
    destination_country: str | None = Field(default=None, sa_type=AutoString(2))
    observed_on: date | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))


class RecruiterIdentifier(SQLModel, table=True):
    __tablename__ = "recruiter_identifier"
    __table_args__ = (
        sa.UniqueConstraint("report_id", "kind", "value_index"),
        sa.Index("ix_recruiter_identifier_kind_value_index", "kind", "value_index"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    report_id: uuid.UUID = Field(foreign_key="recruitment_report.id")
    kind: IdentifierKind = Field(sa_type=str_enum(IdentifierKind, 20))
    value_enc: str
    value_index: str = Field(max_length=64)


class RecruiterLink(SQLModel, table=True):
    """A returnee who named the recruiter of a report, and how they knew them (HTCDS ``rec_``)."""

    __tablename__ = "recruiter_link"

    report_id: uuid.UUID = Field(foreign_key="recruitment_report.id", primary_key=True)
    returnee_id: uuid.UUID = Field(foreign_key="returnee.id", primary_key=True)
    relationship: RecruiterRelationship = Field(sa_type=str_enum(RecruiterRelationship, 30))


class RecruitmentAlert(SQLModel, table=True):
    """An identifier reported by at least the alert threshold of independent agencies."""

    __tablename__ = "recruitment_alert"
    __table_args__ = (sa.UniqueConstraint("kind", "value_index"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    kind: IdentifierKind = Field(sa_type=str_enum(IdentifierKind, 20))
    value_index: str = Field(max_length=64)
    value_enc: str
    sources: int
    raised_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
