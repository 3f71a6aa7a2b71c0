"""Field checks of the records partners push about a person, in one place: returnee records
(:mod:`api.returnees.schemas`) and departures (:mod:`api.register.schemas`) use the same ones
(``_country = field_validator("returned_from_country")(checks.country)``).

Dates are checked against "today" from the validation context (``model_validate(raw,
context={"today": d})``: one clock reading for a whole batch), or the clock's when none is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

from pydantic import ValidationInfo

from api.core import clock
from api.returnees import nik as nikmod
from models.regions import held_to_depth, is_region

_COUNTRY = re.compile(r"^[A-Z]{2}$")


def today(info: ValidationInfo) -> date:
    """The day validated against: the batch's (validation context), else the clock's."""
    ctx = info.context
    if ctx is not None:
        day = ctx.get("today")
        if day is not None:
            return day
    return clock.now().date()


def nik(v: str | None, info: ValidationInfo) -> str | None:
    """A well-formed NIK (:mod:`api.returnees.nik`), separators dropped."""
    if v is None:
        return None
    try:
        return nikmod.parse(v, today=today(info)).nik
    except nikmod.InvalidNik as exc:
        raise ValueError(str(exc)) from None


def country(v: str) -> str:
    if not _COUNTRY.match(v):
        raise ValueError("an ISO 3166-1 alpha-2 code: two upper-case letters, e.g. 'MY'")
    return v


def birth_date(v: date | None, info: ValidationInfo) -> date | None:
    if v is not None and (v > today(info) or v.year < 1900):
        raise ValueError("the birth date is in the future or before 1900")
    return v


def subdistrict(v: str | None, info: ValidationInfo) -> str | None:
    """A sub-district of the record's ``origin_district`` (validated before it)."""
    district = info.data.get("origin_district")
    if v is not None and district is not None and not (is_region(v, "subdistrict") and v.startswith(district + ".")):
        held = "" if held_to_depth(district) else " (below the regency it holds Kalimantan Barat only)"
        raise ValueError(f"'{v}' is not a sub-district of {district} in the region reference{held}")
    return v


def day_of(what: str) -> Callable[[date, ValidationInfo], date]:
    """The check of a record's own date (``what``: "return", "departure"): not after tomorrow
    (a day's slack: the sender's clock is in WIB, UTC+7, ours in UTC), not before 1990."""

    def check(v: date, info: ValidationInfo) -> date:
        if v > today(info) + timedelta(days=1) or v.year < 1990:
            raise ValueError(f"the {what} date is in the future or before 1990")
        return v

    return check
