"""What agencies send and receive about illegal recruitment, and what the public reads."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.core import params
from api.core.pagination import Keyset, Page
from api.core.text import SafeText
from api.register.schemas import village_code
from models import IdentifierKind, RecruiterRelationship, RecruitmentModus
from models.regions import is_region

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PHONE_NOISE = re.compile(r"[\s().-]")
_PHONE = re.compile(r"^[0-9]{6,16}$")
_HANDLE = re.compile(r"^[a-z0-9._]{1,100}$")
_PLATE = re.compile(r"^[A-Z]{1,2}[0-9]{1,4}[A-Z]{0,3}$")

MODUS_LABELS: dict[RecruitmentModus, str] = {
    RecruitmentModus.fake_job_offer_social_media: "Tawaran kerja palsu lewat media sosial",
    RecruitmentModus.visa_free_border_entry: "Diajak masuk bebas visa lewat pos lintas batas, lalu dipekerjakan "
                                             "tanpa dokumen",
    RecruitmentModus.debt_bondage: "Jeratan utang: biaya keberangkatan ditanggung lalu dipotong dari gaji",
    RecruitmentModus.marriage_offer: "Tawaran pernikahan dengan orang di luar negeri",
    RecruitmentModus.other: "Modus lain",
}


def region_code(code: str) -> str:
    """A region code of the reference, of any level (:func:`api.core.params.region`), or a
    village's (``61.07.07.2001``: the register's rule, :func:`api.register.schemas.village_code`)."""
    parts = code.split(".")
    if len(parts) == 4 and not is_region(code):
        return village_code(code, ".".join(parts[:3]))
    return params.region(code)


def normalised_identifier(kind: IdentifierKind, value: str) -> str:
    """One way to write each identifier, so that the same one reported twice matches: a phone
    number in digits with its country code (``0812…`` is ``62812…``), a handle in lower case
    without ``@``, a plate in capitals without spaces (``KB 1234 XY`` is ``KB1234XY``)."""
    v = value.strip()
    if kind is IdentifierKind.phone:
        v = _PHONE_NOISE.sub("", v).removeprefix("+")
        if v.startswith("0"):
            v = "62" + v[1:]
        if not _PHONE.match(v):
            raise ValueError("a phone number is 6 to 16 digits, optionally after '+'")
    elif kind is IdentifierKind.social_media:
        v = v.lower().removeprefix("@")
        if not _HANDLE.match(v):
            raise ValueError("a social-media handle is 1 to 100 letters, digits, '.' and '_' (without '@')")
    else:
        v = re.sub(r"[\s-]", "", v).upper()
        if not _PLATE.match(v):
            raise ValueError("a vehicle plate is its area letters, number and suffix, e.g. 'KB 1234 XY'")
    return v


class IdentifierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=200, description="stored only encrypted, matched by a keyed index")

    @model_validator(mode="after")
    def _normalise(self) -> IdentifierIn:
        self.value = normalised_identifier(self.kind, self.value)
        return self


class NamedByIn(BaseModel):
    """A returnee who named this recruiter, and the recruiter's relation to them (HTCDS ``rec_``)."""

    model_config = ConfigDict(extra="forbid")

    returnee_id: uuid.UUID
    relationship: RecruiterRelationship = RecruiterRelationship.unknown


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "modus": "fake_job_offer_social_media", "region": "61.07.07", "route": ["61.07.07"],
        "destination_country": "MY", "identifiers": [{"kind": "phone", "value": "0812 0000 1111"}]}]})

    modus: RecruitmentModus
    region: str = Field(max_length=20, description="where the recruitment took place (a region code the agency "
                        "may write for)", examples=["61.07.07"])
    route: list[str] = Field(default_factory=list, max_length=20, description="region codes of the route, in order",
                             examples=[["61.07.07", "61.07.07.2001"]])
    places: list[str] = Field(default_factory=list, max_length=20, description="region codes of other places named")
    place_note: SafeText | None = Field(default=None, max_length=1000, description="places in words (never published)")
    destination_country: str | None = Field(default=None, examples=["MY"])
    observed_on: date | None = None
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=20)
    named_by: list[NamedByIn] = Field(default_factory=list, max_length=100)

    _region = field_validator("region")(region_code)

    @field_validator("route", "places")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        return [region_code(c) for c in v]

    @field_validator("destination_country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        if v is not None and not _COUNTRY.match(v):
            raise ValueError("an ISO 3166-1 alpha-2 code: two upper-case letters, e.g. 'MY'")
        return v

    @field_validator("named_by")
    @classmethod
    def _unique(cls, v: list[NamedByIn]) -> list[NamedByIn]:
        if len({n.returnee_id for n in v}) != len(v):
            raise ValueError("a returnee is named once")
        return v


class NamedByOut(BaseModel):
    returnee_id: uuid.UUID
    relationship: RecruiterRelationship


class ReportOut(BaseModel):
    """A report as its writer gets it back: the identifiers' kinds, never their values."""

    id: uuid.UUID
    reporting_agency: str
    modus: RecruitmentModus
    region: str
    route: list[str]
    places: list[str]
    place_note: str | None
    destination_country: str | None
    observed_on: date | None
    identifier_kinds: list[IdentifierKind]
    named_by: list[NamedByOut]
    created_at: datetime


class AlertOut(BaseModel):
    """An identifier reported by at least the alert threshold of independent agencies. Its
    value only with ``pii:read``."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: uuid.UUID
    kind: IdentifierKind
    value: str | None = Field(description="null without pii:read")
    value_on_file: bool
    sources: int = Field(description="distinct agencies that reported it")
    reporting_agencies: list[str]
    modus: list[RecruitmentModus]
    regions: list[str]
    reports: int
    named_by: list[uuid.UUID] = Field(description="returnees who named this recruiter, of those the caller may read")
    raised_at: datetime
    updated_at: datetime


class AlertList(Page[AlertOut]):
    pass


class Place(BaseModel):
    code: str
    name: str | None


class WarningOut(BaseModel):
    """A recruitment modus seen at a place, reported by independent agencies: what the public
    should know. No person, no identifier, no free text."""

    modus: RecruitmentModus
    description: str = Field(description="the modus, in words for the public (Bahasa Indonesia)")
    region: Place
    route: list[Place]
    destination_countries: list[str]
    first_reported: str = Field(description="month, YYYY-MM")
    last_reported: str = Field(description="month, YYYY-MM")


class WarningList(Page[WarningOut]):
    pass



ALERTS = Keyset("alerts", (datetime, uuid.UUID))  # by (raised_at, id), newest first
WARNINGS = Keyset("warnings", (str, str))  # by (modus, region)
