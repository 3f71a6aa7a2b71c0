"""Returnees: migrant workers (PMI) deported or repatriated, as pushed by BP3MI.

Trafficking indicators follow IOM's Human Trafficking Case Data Standard (HTCDS):
``vic_TraffickingStatus`` (possible / actual / not a victim), methods of control, type of
exploitation, recruiter relationship. NIK, passport and phone numbers are stored only
encrypted (``*_enc``) with a keyed blind index (``*_index``) to match them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import AutoString

from models.base import new_id, ts_column, utcnow
from models.columns import EnumList, str_enum


class Sex(StrEnum):
    F = "F"
    M = "M"


class ReturnType(StrEnum):
    deported = "deported"
    repatriated = "repatriated"
    self_returned = "self_returned"


class TraffickingStatus(StrEnum):
    possible = "possible"
    actual = "actual"
    not_victim = "not_victim"
    unknown = "unknown"


class ControlMethod(StrEnum):
    """HTCDS methods of control (``meth_*``)."""

    debt_bondage = "debt_bondage"
    takes_earnings = "takes_earnings"
    threats = "threats"
    psychological_abuse = "psychological_abuse"
    physical_abuse = "physical_abuse"
    sexual_abuse = "sexual_abuse"
    false_promises = "false_promises"
    psychoactive_substances = "psychoactive_substances"
    restricts_movement = "restricts_movement"
    restricts_medical_care = "restricts_medical_care"
    excessive_working_hours = "excessive_working_hours"
    threat_to_family = "threat_to_family"
    withholds_documents = "withholds_documents"
    withholds_necessities = "withholds_necessities"
    other = "other"


class ExploitationType(StrEnum):
    """HTCDS types of exploitation (``type_*``)."""

    forced_labour = "forced_labour"
    sexual_exploitation = "sexual_exploitation"
    domestic_servitude = "domestic_servitude"
    forced_marriage = "forced_marriage"
    forced_begging = "forced_begging"
    forced_criminality = "forced_criminality"
    organ_removal = "organ_removal"
    other = "other"


class RecruiterRelationship(StrEnum):
    """HTCDS ``rec_`` relationship of the recruiter to the victim."""

    intimate_partner = "intimate_partner"
    friend = "friend"
    family = "family"
    neighbour = "neighbour"
    agency = "agency"
    employer = "employer"
    other = "other"
    unknown = "unknown"


class Person(SQLModel, table=True):
    """One person, as far as an identifier tells: the same NIK under two records is one person."""

    __tablename__ = "person"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    nik_index: str | None = Field(default=None, max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))


class ReturneeBase(SQLModel):
    """A returnee record's plain fields, declared once (SQLModel's Base / table / Create /
    Public family): the table stores them as they are, ``api.returnees.schemas.ReturneeIn``
    validates them with its checks on top, ``ReturneeOut`` shows them. The identity numbers
    are not among them: the input's plain ``nik`` is the table's ``nik_enc`` + ``nik_index``.

    The constraints here are the input's: a table model never validates (its rows come from a
    validated ``ReturneeIn``). Region codes and the country are checked against the reference
    and a pattern, so their column lengths are the database's only (``sa_type``)."""

    source_ref: str = Field(min_length=1, max_length=100, description="the sender's own id, unique per agency")
    full_name: str = Field(min_length=1, max_length=200)
    sex: Sex = Field(sa_type=str_enum(Sex, 1))
    birth_date: date | None = None
    origin_district: str = Field(sa_type=AutoString(16), description="district region code",
                                 schema_extra={"examples": ["61.07"]})
    origin_subdistrict: str | None = Field(default=None, sa_type=AutoString(16), schema_extra={"examples": ["61.07.07"]})
    address: str | None = Field(default=None, max_length=500)
    returned_from_country: str = Field(default="MY", sa_type=AutoString(2), description="ISO 3166-1 alpha-2",
                                       schema_extra={"examples": ["MY"]})
    returned_from_region: str | None = Field(default=None, max_length=100, schema_extra={"examples": ["Sarawak"]})
    return_type: ReturnType = Field(sa_type=str_enum(ReturnType, 20))
    return_date: date
    entry_point: str | None = Field(default=None, max_length=200, schema_extra={"examples": ["PLBN Jagoi Babang"]})
    employer: str | None = Field(default=None, max_length=200)
    sector: str | None = Field(default=None, max_length=100)
    documented: bool | None = None
    trafficking_status: TraffickingStatus = Field(default=TraffickingStatus.unknown,
                                                  sa_type=str_enum(TraffickingStatus, 20))
    control_methods: list[ControlMethod] = Field(default_factory=list, max_length=len(ControlMethod),
                                                 sa_type=EnumList(ControlMethod))
    exploitation_types: list[ExploitationType] = Field(default_factory=list, max_length=len(ExploitationType),
                                                       sa_type=EnumList(ExploitationType))
    recruiter_relationship: RecruiterRelationship | None = Field(default=None,
                                                                 sa_type=str_enum(RecruiterRelationship, 30))


class Returnee(ReturneeBase, table=True):
    __tablename__ = "returnee"
    __table_args__ = (
        sa.UniqueConstraint("source_agency", "source_ref"),
        sa.Index("ix_returnee_district_date", "origin_district", "return_date"),
        sa.Index("ix_returnee_updated_at_id", "updated_at", "id"),  # keyset order of the list
        sa.Index("ix_returnee_change_pos", "change_pos", unique=True),  # the sync order (sort=changes)
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    source_agency: str = Field(foreign_key="agency.code", max_length=64)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    version: int = Field(default=1)
    content_hash: str = Field(max_length=64)

    nik_enc: str | None = None
    # Only the NIK's index is indexed: it is what records are matched on. Passport and phone
    # indexes get one when a query needs it (each index is paid on every batch insert).
    nik_index: str | None = Field(default=None, max_length=64, index=True)
    passport_enc: str | None = None
    passport_index: str | None = Field(default=None, max_length=64)
    phone_enc: str | None = None
    phone_index: str | None = Field(default=None, max_length=64)

    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    # Position of the record's last change in commit order, set by the unit of work as it commits
    # (api/core/changes.py); NULL only inside the writing transaction.
    change_pos: int | None = Field(default=None, sa_type=sa.BigInteger)
