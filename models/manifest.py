"""Arrival manifests: a deportation announced before it happens.

The consulate (in Kuching, for most) tells BP3MI by letter, about a day ahead, whom it will
deport through which border post on which day. BP3MI registers the letter and the people listed
(identity as far as known: often no passport). At the border each person is marked ``arrived``
or ``not_arrived``; an arrived person becomes a returnee record and is on a deportation notice
to its origin district, which follows the person home: ``located`` (the desa, who saw them,
when) or ``not_located``. NIK and passport numbers are stored only encrypted with a blind index,
as for returnees.
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
from models.returnee import Sex


class EntryPoint(StrEnum):
    """The border posts and ports through which deportees from Malaysia enter Kalimantan Barat."""

    plbn_entikong = "plbn_entikong"  # Sanggau (61.03), from Tebedu, Sarawak
    plbn_aruk = "plbn_aruk"  # Sambas (61.01), from Biawak
    plbn_badau = "plbn_badau"  # Kapuas Hulu (61.06), from Lubok Antu
    plbn_jagoi_babang = "plbn_jagoi_babang"  # Bengkayang (61.07), from Serikin
    plbn_sei_kelik = "plbn_sei_kelik"  # Sintang (61.05)

    @property
    def label(self) -> str:
        return ENTRY_POINT_LABELS[self]

    @property
    def region(self) -> str:
        return ENTRY_POINT_REGIONS[self]


ENTRY_POINT_LABELS = {
    EntryPoint.plbn_entikong: "PLBN Entikong",
    EntryPoint.plbn_aruk: "PLBN Aruk",
    EntryPoint.plbn_badau: "PLBN Badau",
    EntryPoint.plbn_jagoi_babang: "PLBN Jagoi Babang",
    EntryPoint.plbn_sei_kelik: "PLBN Sei Kelik",
}
ENTRY_POINT_REGIONS = {
    EntryPoint.plbn_entikong: "61.03.21",
    EntryPoint.plbn_aruk: "61.01.09",
    EntryPoint.plbn_badau: "61.06.14",
    EntryPoint.plbn_jagoi_babang: "61.07.07",
    EntryPoint.plbn_sei_kelik: "61.05.06",
}


class ManifestPersonStatus(StrEnum):
    expected = "expected"  # listed; not yet at the border
    arrived = "arrived"  # crossed; the origin district is to locate them
    not_arrived = "not_arrived"  # listed but did not come through
    located = "located"  # seen at home (desa, by whom, when)
    not_located = "not_located"  # the district looked and did not find them


class Manifest(SQLModel, table=True):
    __tablename__ = "manifest"
    __table_args__ = (
        sa.Index("ix_manifest_created_id", "created_at", "id"),
        sa.UniqueConstraint("created_by", "letter_ref"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    created_by: str = Field(foreign_key="agency.code", max_length=64)
    letter_ref: str = Field(max_length=100)
    letter_date: date
    expected_date: date = Field(index=True)
    entry_point: EntryPoint = Field(sa_type=str_enum(EntryPoint, 32))
    note: str | None = Field(default=None, max_length=2000)
    person_count: int = Field(default=0)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))


class ManifestPerson(SQLModel, table=True):
    """One person listed on a manifest, and what became of them."""

    __tablename__ = "manifest_person"
    __table_args__ = (
        sa.UniqueConstraint("manifest_id", "position"),
        sa.Index("ix_manifest_person_district_status", "origin_district", "status"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    manifest_id: uuid.UUID = Field(foreign_key="manifest.id", index=True)
    position: int  # the order of the letter's list, from 1
    full_name: str = Field(max_length=200)
    sex: Sex = Field(sa_type=str_enum(Sex, 1))
    birth_date: date | None = None
    nik_enc: str | None = None
    nik_index: str | None = Field(default=None, max_length=64, index=True)
    passport_enc: str | None = None
    passport_index: str | None = Field(default=None, max_length=64)
    origin_district: str | None = Field(default=None, sa_type=AutoString(16))
    origin_subdistrict: str | None = Field(default=None, sa_type=AutoString(16))
    status: ManifestPersonStatus = Field(default=ManifestPersonStatus.expected,
                                         sa_type=str_enum(ManifestPersonStatus, 16))
    version: int = Field(default=1)
    arrived_on: date | None = None
    marked_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    returnee_id: uuid.UUID | None = Field(default=None, foreign_key="returnee.id")
    notice_id: uuid.UUID | None = Field(default=None, foreign_key="notice.id")
    located_village: str | None = Field(default=None, sa_type=AutoString(20))
    seen_by: str | None = Field(default=None, max_length=200)
    seen_on: date | None = None
    outcome_note: str | None = Field(default=None, max_length=2000)
    outcome_by: str | None = Field(default=None, foreign_key="agency.code", max_length=64)
    outcome_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
