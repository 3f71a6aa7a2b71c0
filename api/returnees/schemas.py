"""What partners send and receive about returnees.

A batch is validated record by record: the body's ``records`` are taken as plain objects and
each is validated through :class:`ReturneeIn` on its own, so one bad record is reported in its
result and never fails the others.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlmodel import Field as SQLField
from sqlmodel._compat import SQLModelConfig  # the config type of SQLModel classes (not re-exported)

from api.core import params, text
from api.core.pagination import Keyset, Page
from api.returnees import checks
from api.returnees import nik as nikmod
from models import ReturneeBase

MAX_BATCH = 1000

_PASSPORT = re.compile(r"^[A-Z0-9]{5,20}$")
_PHONE = re.compile(r"^\+?[0-9]{6,20}$")
_PASSPORT_NOISE = re.compile(r"[\s-]")
_PHONE_NOISE = re.compile(r"[\s().-]")


_BLANK_IS_NONE = frozenset({
    "nik", "passport_number", "phone", "birth_date", "origin_subdistrict", "address", "returned_from_region",
    "entry_point", "employer", "sector", "recruiter_relationship",
})


class _ReturneeFields(ReturneeBase):
    """A returnee record's fields and per-field checks (see :class:`ReturneeIn`): the plain
    fields of :class:`models.ReturneeBase` and the identity numbers, in clear here only."""

    model_config = SQLModelConfig(extra="forbid", str_strip_whitespace=True)

    nik: str | None = SQLField(default=None, description="16-digit NIK; stored encrypted",
                               schema_extra={"examples": ["6107074505900001"]})
    passport_number: str | None = SQLField(default=None, description="stored encrypted")
    phone: str | None = SQLField(default=None, description="stored encrypted")

    _nik = field_validator("nik")(checks.nik)

    @field_validator("passport_number")
    @classmethod
    def _passport(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = _PASSPORT_NOISE.sub("", v).upper()
        if not _PASSPORT.match(v):
            raise ValueError("a passport number is 5 to 20 letters and digits")
        return v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = _PHONE_NOISE.sub("", v)
        if not _PHONE.match(v):
            raise ValueError("a phone number is 6 to 20 digits, optionally after '+'")
        return v

    _district = field_validator("origin_district")(params.district)

    _country = field_validator("returned_from_country")(checks.country)
    _born = field_validator("birth_date")(checks.birth_date)
    _returned = field_validator("return_date")(checks.day_of("return"))
    _subdistrict = field_validator("origin_subdistrict")(checks.subdistrict)


class _StrictReturnee(_ReturneeFields):
    """:class:`ReturneeIn` checked field by field: a "before" check of every field. Only a
    record with a NUL character or a bidirectional control (:mod:`api.core.text`) in a field
    goes this way, for its errors (:class:`ReturneeIn` stops at the first such field; this
    reports every field's errors, as they are)."""

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, str):
            if "\x00" in v:
                raise ValueError("text may not contain NUL characters")
            text.refuse_bidi(v)
            if info.field_name in _BLANK_IS_NONE and not v.strip():
                return None  # senders write "" for "not known"
        return v


class ReturneeIn(_ReturneeFields):
    """One returnee record as a sending agency pushes it (keyed by its ``source_ref``)."""

    # Text fields may not hold NUL characters nor bidirectional controls (a name that displays
    # otherwise than it is, api.core.text), and "" (or blanks) in an optional field means
    # "not known" (None): one pass over the record before its fields are validated, not a
    # validator call per field. Dates are checked against "today" from the validation context
    # (model_validate(raw, context={"today": d}): one clock reading for a whole batch), or the
    # clock's when none is given.

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        # All the record's text at once: one search for NUL and bidi controls instead of one
        # per field. Only a record that holds one (in any value) takes the field-by-field walk.
        joined = "".join([v for v in data.values() if isinstance(v, str)])
        if "\x00" in joined or text.has_bidi_controls(joined):
            return cls._text_by_field(data, info)
        out = None
        for name in _BLANK_IS_NONE:
            v = data.get(name)
            if isinstance(v, str) and not v.strip():
                if out is None:
                    out = dict(data)
                out[name] = None  # senders write "" for "not known"
        return data if out is None else out

    @staticmethod
    def _text_by_field(data: dict[str, Any], info: ValidationInfo) -> Any:
        out = None
        for name, v in data.items():
            if not isinstance(v, str):
                continue
            if name not in _FIELD_NAMES:
                continue  # reported as an extra field, as it is
            if "\x00" in v or text.has_bidi_controls(v):
                # Every field's errors, as the field-by-field check reports them.
                _StrictReturnee.model_validate(data, context=info.context)
                raise AssertionError("unreachable: a NUL or bidi character passed the field check")  # pragma: no cover
            if name in _BLANK_IS_NONE and not v.strip():
                if out is None:
                    out = dict(data)
                out[name] = None  # senders write "" for "not known"
        return data if out is None else out

    @model_validator(mode="after")
    def _dedupe(self) -> ReturneeIn:
        values = self.__dict__
        for name in ("control_methods", "exploitation_types"):
            v = values[name]
            if v:
                values[name] = sorted(set(v))
        return self

    def warnings(self, today: date | None = None) -> list[str]:
        """Where the NIK disagrees with the declared sex or birth date (not a rejection)."""
        if self.nik is None:
            return []
        info = nikmod.parse(self.nik, today=today)
        return [f"nik: {m}" for m in nikmod.mismatches(info, sex=self.sex, birth_date=self.birth_date)]


_FIELD_NAMES = frozenset(_ReturneeFields.model_fields)


def _record_schema() -> dict[str, Any]:
    """ReturneeIn's schema inlined in the batch's (its enums are components through ReturneeOut)."""
    schema = ReturneeIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


class BatchIn(BaseModel):
    """Up to 1,000 records; each is validated on its own (see :class:`ReturneeIn`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"records": [{
        "source_ref": "KB-2025-0901", "full_name": "Siti Aminah", "nik": "6107074505900001", "sex": "F",
        "birth_date": "1990-05-05", "origin_district": "61.07", "origin_subdistrict": "61.07.07",
        "returned_from_country": "MY", "returned_from_region": "Sarawak", "return_type": "deported",
        "return_date": "2025-07-01", "entry_point": "PLBN Jagoi Babang", "trafficking_status": "possible"}]}]})

    records: list[Any] = Field(
        max_length=MAX_BATCH,
        description="returnee records (see ReturneeIn); at most 1,000",
        json_schema_extra=lambda schema: schema.update(items=_record_schema()),
    )


class FieldError(BaseModel):
    field: str
    message: str


class ItemResult(BaseModel):
    index: int
    source_ref: str | None
    id: uuid.UUID | None
    status: Literal["created", "updated", "unchanged", "rejected"]
    code: Literal["source-ref-reused"] | None = Field(
        default=None, description="why a record was rejected when it is not (only) its fields: `source-ref-reused`, "
        "its source_ref names a stored record of another person (another NIK, or another name and birth date); "
        "nothing was written")
    errors: list[FieldError] = []
    warnings: list[str] = []


class BatchOut(BaseModel):
    results: list[ItemResult]
    notices: list[dict[str, Any]] = []


class ReturneeOut(ReturneeBase):
    """A returnee as a reader sees it: NIK, passport and phone in full with ``pii:read``;
    without it ``null``, and ``*_on_file`` says whether the record holds one (no part of a
    number is shown: see :mod:`api.core.crypto`)."""

    model_config = SQLModelConfig(json_schema_serialization_defaults_required=True)  # every field is always sent

    id: uuid.UUID
    person_id: uuid.UUID = SQLField(description="one per NIK: records of the same NIK share it")
    source_agency: str
    version: int
    nik: str | None = SQLField(description="null without pii:read")
    passport_number: str | None = SQLField(description="null without pii:read")
    phone: str | None = SQLField(description="null without pii:read")
    nik_on_file: bool = SQLField(description="the record holds an NIK (shown only with pii:read)")
    passport_on_file: bool = SQLField(description="the record holds a passport number (shown only with pii:read)")
    phone_on_file: bool = SQLField(description="the record holds a phone number (shown only with pii:read)")
    pii_masked: bool = SQLField(description="true when the identifiers are withheld (no pii:read)")
    created_at: datetime
    updated_at: datetime


class ReturneeList(Page[ReturneeOut]):
    pass


RETURNEES = Keyset("returnees", (datetime, uuid.UUID))  # by (updated_at, id)
RETURNEE_CHANGES = Keyset("returnees:changes", (int,))  # by change_pos: the sync order
