"""What partners send and receive about arrival manifests."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from api.core import clock, params
from api.core.pagination import Keyset, Page
from api.core.text import SafeText
from api.returnees import nik as nikmod
from models import EntryPoint, ManifestPersonStatus, Sex
from models.regions import covers, held_to_depth, is_region

MAX_PERSONS = 1000
_PASSPORT = re.compile(r"^[A-Z0-9]{5,20}$")
_PASSPORT_NOISE = re.compile(r"[\s-]")


def _not_after_tomorrow(v: date, what: str) -> date:
    # A day's slack: the sender's clock is in WIB (UTC+7), ours in UTC.
    if v > clock.now().date() + timedelta(days=1) or v.year < 1990:
        raise ValueError(f"{what} is in the future or before 1990")
    return v


class ManifestPersonIn(BaseModel):
    """One person as the consulate's letter lists them: identity as far as known (often no
    passport). ``origin_district`` may be omitted when an NIK is given: it is read from it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    full_name: SafeText = Field(min_length=1, max_length=200)
    sex: Sex
    birth_date: date | None = None
    nik: str | None = Field(default=None, description="16-digit NIK; stored encrypted",
                            examples=["3578014505900001"])
    passport_number: str | None = Field(default=None, description="stored encrypted")
    origin_district: str | None = Field(default=None, examples=["61.07", "35.78"],
                                        description="regency code (any province); null when not known")
    origin_subdistrict: str | None = Field(default=None, examples=["61.07.07"])

    @field_validator("birth_date")
    @classmethod
    def _born(cls, v: date | None) -> date | None:
        if v is not None and (v > clock.now().date() or v.year < 1900):
            raise ValueError("the birth date is in the future or before 1900")
        return v

    @field_validator("nik")
    @classmethod
    def _nik(cls, v: str | None) -> str | None:
        if v is None or not v:
            return None
        try:
            return nikmod.parse(v).nik
        except nikmod.InvalidNik as exc:
            raise ValueError(str(exc)) from None

    @field_validator("passport_number")
    @classmethod
    def _passport(cls, v: str | None) -> str | None:
        if v is None or not v:
            return None
        v = _PASSPORT_NOISE.sub("", v).upper()
        if not _PASSPORT.match(v):
            raise ValueError("a passport number is 5 to 20 letters and digits")
        return v

    @field_validator("origin_district")
    @classmethod
    def _district(cls, v: str | None) -> str | None:
        return None if v is None else params.district(v)

    @field_validator("origin_subdistrict")
    @classmethod
    def _subdistrict(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        district = info.data.get("origin_district")
        if district is None or not (is_region(v, "subdistrict") and v.startswith(district + ".")):
            raise ValueError(f"'{v}' is not a sub-district of {district} in the region reference")
        return v

    @model_validator(mode="after")
    def _origin_from_nik(self) -> ManifestPersonIn:
        if self.origin_district is None and self.nik is not None:
            self.origin_district = nikmod.parse(self.nik).regency
        return self


class ManifestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [{
        "letter_ref": "KJRI-KCH/PK/11/2026/0412", "letter_date": "2026-11-20", "expected_date": "2026-11-21",
        "entry_point": "plbn_entikong",
        "persons": [{"full_name": "Siti Aminah", "sex": "F", "origin_district": "61.07"},
                    {"full_name": "Budi Santoso", "sex": "M", "nik": "3578011203900002"}],
    }]})

    letter_ref: SafeText = Field(min_length=1, max_length=100, examples=["KJRI-KCH/PK/11/2026/0412"],
                                 description="the consulate letter's reference; unique per agency")
    letter_date: date
    expected_date: date = Field(description="the day the deportation is expected at the entry point")
    entry_point: EntryPoint
    note: SafeText | None = Field(default=None, max_length=2000)
    persons: list[ManifestPersonIn] = Field(min_length=1, max_length=MAX_PERSONS)

    @field_validator("letter_date")
    @classmethod
    def _letter(cls, v: date) -> date:
        return _not_after_tomorrow(v, "the letter date")

    @model_validator(mode="after")
    def _dates(self) -> ManifestCreate:
        if self.expected_date < self.letter_date:
            raise ValueError("expected_date is before letter_date")
        if self.expected_date > self.letter_date + timedelta(days=90):
            raise ValueError("expected_date is more than 90 days after letter_date")
        return self


class Marking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: uuid.UUID
    status: Literal["arrived", "not_arrived"]


class ArrivalsIn(BaseModel):
    """Who of the manifest came through the border post, and on which day."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "arrived_on": "2026-11-21",
        "persons": [{"person_id": "0b5c9f3e-7a41-4f0e-9d1c-2a6f8e4b7c10", "status": "arrived"},
                    {"person_id": "5d2e8a1b-3c4f-4a6b-8e9d-0f1a2b3c4d5e", "status": "not_arrived"}],
    }]})

    arrived_on: date = Field(description="the day at the border post")
    persons: list[Marking] = Field(min_length=1, max_length=MAX_PERSONS)

    @field_validator("arrived_on")
    @classmethod
    def _arrived(cls, v: date) -> date:
        return _not_after_tomorrow(v, "arrived_on")

    @field_validator("persons")
    @classmethod
    def _unique(cls, v: list[Marking]) -> list[Marking]:
        if len({m.person_id for m in v}) != len(v):
            raise ValueError("a person is marked twice")
        return v


class OutcomeIn(BaseModel):
    """The origin district followed an arrived person home: ``located`` (the desa, who saw
    them, when) or ``not_located``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [{
        "outcome": "located", "village": "61.07.07.2001", "seen_by": "Kepala Desa", "seen_on": "2026-11-23",
    }]})

    outcome: Literal["located", "not_located"]
    village: str | None = Field(default=None, examples=["61.07.07.2001"],
                                description="desa / kelurahan code; required for `located` where the region "
                                            "reference holds the desa (Kalimantan Barat)")
    seen_by: SafeText | None = Field(default=None, max_length=200, examples=["Kepala Desa Jagoi"],
                                     description="who saw the person; required for `located`")
    seen_on: date = Field(description="the day they were seen (or looked for); not after today")
    note: SafeText | None = Field(default=None, max_length=2000)

    @field_validator("seen_on")
    @classmethod
    def _seen(cls, v: date) -> date:
        return _not_after_tomorrow(v, "seen_on")

    @field_validator("village")
    @classmethod
    def _village(cls, v: str | None) -> str | None:
        if v is not None and not is_region(v, "village"):
            raise ValueError(f"'{v}' is not a desa / kelurahan code of the region reference")
        return v

    @model_validator(mode="after")
    def _located(self) -> OutcomeIn:
        if self.outcome == "located" and not self.seen_by:
            raise ValueError("seen_by is required when the person was located")
        return self

    def village_error(self, origin: str | None) -> str | None:
        """Why ``village`` does not fit the person's origin district, if it does not."""
        if self.outcome != "located" or origin is None:
            return None
        if self.village is None:
            return f"village is required: the desa of {origin} where the person was seen" if held_to_depth(origin) \
                else None
        if not covers(origin, self.village):
            return f"'{self.village}' is not a desa of {origin}"
        return None


class ManifestPersonOut(BaseModel):
    """A person of a manifest as a reader sees them: NIK and passport in full with
    ``pii:read``; without it ``null``, and ``*_on_file`` says whether one is held."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: uuid.UUID
    manifest_id: uuid.UUID
    position: int
    letter_ref: str
    expected_date: date
    entry_point: EntryPoint
    full_name: str
    sex: Sex
    birth_date: date | None
    nik: str | None = Field(description="null without pii:read")
    passport_number: str | None = Field(description="null without pii:read")
    nik_on_file: bool
    passport_on_file: bool
    pii_masked: bool
    origin_district: str | None
    origin_district_name: str | None
    origin_subdistrict: str | None
    status: ManifestPersonStatus
    arrived_on: date | None
    returnee_id: uuid.UUID | None
    notice_id: uuid.UUID | None
    located_village: str | None
    located_village_name: str | None
    seen_by: str | None
    seen_on: date | None
    outcome_note: str | None
    outcome_by: str | None
    outcome_at: datetime | None
    version: int
    updated_at: datetime


class ManifestSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_by: str
    letter_ref: str
    letter_date: date
    expected_date: date
    entry_point: EntryPoint
    entry_point_name: str
    note: str | None
    person_count: int = Field(description="how many people the letter lists (all of them)")
    version: int
    created_at: datetime
    updated_at: datetime


class ManifestOut(ManifestSummary):
    persons: list[ManifestPersonOut] = Field(description="the people the caller may see: all for the issuer "
                                                         "and the province, a district's own otherwise")
    counts: dict[str, int] = Field(description="the people shown, by status")


class ManifestList(Page[ManifestSummary]):
    pass


class ManifestPersonList(Page[ManifestPersonOut]):
    pass


View = Literal["expected_this_week", "arrived_not_located", "not_located_after_7_days"]

MANIFESTS = Keyset("manifests", (datetime, uuid.UUID))  # by (created_at, id), newest first
# by (expected day, id) or (arrival day, id), one cursor kind per view
PERSON_VIEWS: dict[str, Keyset] = {
    view: Keyset(f"manifest-persons:{view}", (str, uuid.UUID))  # the day as YYYY-MM-DD
    for view in ("expected_this_week", "arrived_not_located", "not_located_after_7_days")
}
