"""The district's register of migrant workers: departures, and one row per person built from them
and from the returnee records (the person view).

A departure is recorded by BP3MI from its placement data (a batch, keyed by ``source_ref``) or by a
village or district office (procedural or not). Departures and returnee records of the same NIK
share a :class:`models.returnee.Person` (one per NIK blind index, made by the returnees' batch
writer); :class:`RegisterPerson` sums each person's records: how many times they left and came
back, whether they are abroad now, whether they returned a second time. The NIK is stored only
encrypted (``nik_enc``) with its keyed blind index.
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
from models.returnee import ReturnType, Sex


class DepartureBase(SQLModel):
    """A departure record's plain fields (as :class:`models.returnee.ReturneeBase` for returnees):
    the NIK is not among them (the input's ``nik`` is the table's ``nik_enc`` + ``nik_index``)."""

    source_ref: str = Field(min_length=1, max_length=100, description="the sender's own id, unique per agency")
    full_name: str = Field(min_length=1, max_length=200)
    sex: Sex = Field(sa_type=str_enum(Sex, 1))
    birth_date: date | None = None
    origin_district: str = Field(sa_type=AutoString(16), schema_extra={"examples": ["61.07"]})
    origin_subdistrict: str | None = Field(default=None, sa_type=AutoString(16), schema_extra={"examples": ["61.07.07"]})
    origin_village: str | None = Field(default=None, sa_type=AutoString(20), description="desa / kelurahan code",
                                       schema_extra={"examples": ["61.07.07.2001"]})
    destination_country: str = Field(sa_type=AutoString(2), description="ISO 3166-1 alpha-2",
                                     schema_extra={"examples": ["MY"]})
    destination_region: str | None = Field(default=None, max_length=100, schema_extra={"examples": ["Sarawak"]})
    employer: str | None = Field(default=None, max_length=200)
    sector: str | None = Field(default=None, max_length=100)
    departure_date: date
    procedural: bool = Field(description="placed through the procedure of UU 18/2017 (documents, placement agency)")


class Departure(DepartureBase, table=True):
    __tablename__ = "departure"
    __table_args__ = (sa.UniqueConstraint("source_agency", "source_ref"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    source_agency: str = Field(foreign_key="agency.code", max_length=64)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    version: int = Field(default=1)
    content_hash: str = Field(max_length=64)
    nik_enc: str | None = None
    nik_index: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))


class RegisterStatus(StrEnum):
    abroad = "abroad"  # the last record is a departure
    returned = "returned"  # the last record is a return (repatriated or on their own)
    deported = "deported"  # the last record is a deportation


class RegisterPerson(SQLModel, table=True):
    """One person of the register, summed from their departures and returnee records (refreshed
    by every writer of either). The origin is that of the latest record; the village the latest
    one known within it."""

    __tablename__ = "register_person"
    __table_args__ = (sa.Index("ix_register_person_origin", "origin_district", "origin_subdistrict"),)

    person_id: uuid.UUID = Field(foreign_key="person.id", primary_key=True)
    full_name: str = Field(max_length=200)
    sex: Sex = Field(sa_type=str_enum(Sex, 1))
    birth_date: date | None = None
    nik_enc: str | None = None
    nik_context: str | None = Field(default=None, max_length=32)  # the encryption context of nik_enc
    origin_district: str = Field(sa_type=AutoString(16))
    origin_subdistrict: str | None = Field(default=None, sa_type=AutoString(16))
    origin_village: str | None = Field(default=None, sa_type=AutoString(20))
    departures: int = 0
    procedural_departures: int = 0
    returns: int = 0
    deportations: int = 0
    last_departure: date | None = None
    last_return: date | None = None
    last_return_type: ReturnType | None = Field(default=None, sa_type=str_enum(ReturnType, 20))
    status: RegisterStatus = Field(sa_type=str_enum(RegisterStatus, 16))
    repeat_return: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
