"""What partners send and receive about the register of migrant workers.

A departure batch is validated record by record, as a returnee batch is: the body's ``records``
are taken as plain objects and each is validated through :class:`DepartureIn` on its own.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlmodel import Field as SQLField
from sqlmodel._compat import SQLModelConfig  # the config type of SQLModel classes (not re-exported)

from api.core import params, text
from api.core.pagination import Keyset, Page
from api.returnees import checks
from models import DepartureBase, RegisterStatus, ReturnType, Sex
from models.regions import is_region, regions

MAX_BATCH = 1000

_VILLAGE = re.compile(r"^[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.[0-9]{4}$")
_BLANK_IS_NONE = frozenset({"nik", "birth_date", "origin_subdistrict", "origin_village", "destination_region",
                            "employer", "sector"})


@lru_cache
def _reference_has_villages() -> bool:
    return any(r.level == "village" for r in regions().values())


def village_code(code: str, subdistrict: str | None) -> str:
    """A desa / kelurahan code of ``subdistrict``: in the region reference when it holds the
    villages (Kemendagri's ``61.07.07.2001``), else of that shape."""
    if subdistrict is None:
        raise ValueError("a village needs its origin_subdistrict")
    known = is_region(code, "village") if _reference_has_villages() else bool(_VILLAGE.match(code))
    if not known or not code.startswith(subdistrict + "."):
        raise ValueError(f"'{code}' is not a village of {subdistrict} in the region reference")
    return code


class DepartureIn(DepartureBase):
    """One departure as BP3MI (from its placement data) or a village or district office records it,
    keyed by its ``source_ref``. ``procedural``: through the legal placement procedure or not."""

    model_config = SQLModelConfig(extra="forbid", str_strip_whitespace=True)

    nik: str | None = SQLField(default=None, description="16-digit NIK; stored encrypted, links the person's "
                               "departures and returns", schema_extra={"examples": ["6107074505900001"]})

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        """No bidirectional controls in any text (shown to other agencies); "" means not known."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, v in data.items():
            if isinstance(v, str):
                text.refuse_bidi(v)
                if name in _BLANK_IS_NONE and not v.strip():
                    out[name] = None
        return out

    _nik = field_validator("nik")(checks.nik)
    _district = field_validator("origin_district")(params.district)

    _subdistrict = field_validator("origin_subdistrict")(checks.subdistrict)

    @field_validator("origin_village")
    @classmethod
    def _village(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else village_code(v, info.data.get("origin_subdistrict"))

    _country = field_validator("destination_country")(checks.country)
    _born = field_validator("birth_date")(checks.birth_date)
    _departed = field_validator("departure_date")(checks.day_of("departure"))


def _record_schema() -> dict[str, Any]:
    schema = DepartureIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


class DepartureBatchIn(BaseModel):
    """Up to 1,000 departure records; each is validated on its own (see :class:`DepartureIn`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"records": [{
        "source_ref": "P3MI-2025-000123", "full_name": "Siti Aminah", "sex": "F", "origin_district": "61.07",
        "origin_subdistrict": "61.07.07", "destination_country": "MY", "departure_date": "2025-03-01",
        "procedural": False}]}]})

    records: list[Any] = Field(max_length=MAX_BATCH, description="departure records (see DepartureIn); at most 1,000",
                               json_schema_extra=lambda schema: schema.update(items=_record_schema()))


class FieldError(BaseModel):
    field: str
    message: str


class DepartureResult(BaseModel):
    index: int
    source_ref: str | None
    id: uuid.UUID | None
    person_id: uuid.UUID | None
    status: Literal["created", "updated", "unchanged", "rejected"]
    errors: list[FieldError] = []


class DepartureBatchOut(BaseModel):
    results: list[DepartureResult]


class PersonOut(BaseModel):
    """A person of the register: summed from their departures and returnee records. The NIK is
    shown only with ``pii:read`` (``nik_on_file`` says whether one is known)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    person_id: uuid.UUID = Field(description="the returnees' person_id: one per NIK")
    full_name: str
    sex: Sex
    birth_date: date | None
    nik: str | None = Field(description="null without pii:read")
    nik_on_file: bool
    pii_masked: bool
    origin_district: str
    origin_subdistrict: str | None
    origin_village: str | None
    status: RegisterStatus = Field(description="abroad (the last record is a departure), returned or deported")
    departures: int = Field(description="times recorded leaving")
    procedural_departures: int
    returns: int = Field(description="times recorded coming back (deported, repatriated or on their own)")
    deportations: int
    last_departure: date | None
    last_return: date | None
    last_return_type: ReturnType | None
    repeat_return: bool = Field(description="returned a second time (or more): offer training or legal placement")
    updated_at: datetime


class PersonList(Page[PersonOut]):
    pass


class DepartureView(BaseModel):
    id: uuid.UUID
    source_agency: str
    source_ref: str
    departure_date: date
    procedural: bool
    destination_country: str
    destination_region: str | None
    employer: str | None
    sector: str | None
    origin_village: str | None


class ReturnView(BaseModel):
    id: uuid.UUID
    source_agency: str
    return_date: date
    return_type: ReturnType
    returned_from_country: str
    entry_point: str | None


class PersonDetail(PersonOut):
    """A person with the records behind the view that the caller may read."""

    departure_records: list[DepartureView]
    return_records: list[ReturnView]


class CountsReply(BaseModel):
    """Persons of the register by sub-district or village, each figure rounded by cell key and
    small cells suppressed (the rule of ``/v1/stats``)."""

    by: Literal["subdistrict", "village"]
    district: str
    threshold: int
    rounding_base: int
    rows: list[dict[str, str | int | bool | None]] = Field(
        description="one row per sub-district (village) with persons: `persons` (rounded; null when suppressed), "
        "`departed`, `abroad`, `returned`, `deported`, `repeat_return` (each rounded as a cell of its own, never "
        "above `persons`), `suppressed`, and the region's `name`")
    total: int | None


PERSONS = Keyset("register:persons", (uuid.UUID,))
