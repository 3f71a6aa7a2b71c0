"""The value types of query parameters: one rule for times and one for days, everywhere.

* :data:`Instant`: an RFC 3339 time **with an offset** (``2025-06-12T10:00:00+07:00``,
  ``...Z``). A time without one is refused rather than guessed: the same wall-clock time is
  seven hours apart in Pontianak and in UTC, and a filter that silently picks one returns the
  wrong records. It is handed on in UTC.
* :data:`Day`: a calendar day, ``YYYY-MM-DD``.
* :data:`Region` / :data:`District`: a region code filter, which must be a code of the region
  reference (any level / a district): an unknown code is a 422 naming the valid ones, not a
  filter that silently matches nothing.

Both lie between :data:`FIRST_DAY` and :data:`LAST_DAY` (an instant once converted to UTC), so
a value near the ends of the calendar (``0001-01-01T00:00:00+14:00`` is in the year 0 in UTC;
the day after ``9999-12-31`` does not exist) is a 422 problem naming the parameter, not a
failure further down. The bounds are far beyond any date the service holds.

Routes wrap them in their ``Query(...)`` (``Annotated[Instant | None, Query(...)]``); the
kernel knows nothing of FastAPI.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

from models.regions import children, is_region, regions

FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)
EARLIEST = datetime.combine(FIRST_DAY, time.min, UTC)
LATEST = datetime.combine(LAST_DAY, time.max, UTC)

_SPAN = f"from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"
INSTANT_HELP = f"RFC 3339 with an offset (`2025-06-12T10:00:00+07:00`, `...Z`), {_SPAN} in UTC"
DAY_HELP = f"`YYYY-MM-DD`, {_SPAN}"


def _instant(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # the offset moves it out of the calendar
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError(f"a time {_SPAN} (in UTC) is expected")
    return utc


def _day(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"a day {_SPAN} is expected")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_instant)]
Day = Annotated[date, AfterValidator(_day)]


def region_codes() -> list[str]:
    return list(regions())


def district_codes() -> list[str]:
    return [r.code for r in regions().values() if r.level == "district"]


_SHAPES = "a province is written like 61, a district 61.07, a sub-district 61.07.07 (GET /v1/regions lists them)"


def _within(parent: str, level: str) -> str:
    """The codes one level down from ``parent`` in the reference, with their names (a
    province's districts, a district's sub-districts: a few dozen at most)."""
    return ", ".join(f"{r.code} {r.name}" for r in children().get(parent, ()) if r.level == level)


def region(value: str) -> str:
    """A region code of the reference, of any level: the one region validator of every
    request field and filter that names a region. Its message helps to the nearest known
    code: the known district's sub-districts, the known province's districts, else how codes
    are written (never the whole national list)."""
    if is_region(value):
        return value
    shown = value[:32]
    parent = value.rsplit(".", 1)[0] if "." in value else None
    if parent is not None and is_region(parent, "district"):
        subs = _within(parent, "subdistrict")
        if not subs:
            raise ValueError(f"'{shown}' is not a region code of the reference, which holds no sub-districts of "
                             f"{parent}")
        raise ValueError(f"'{shown}' is not a sub-district of {parent}; its sub-districts are {subs}")
    if parent is not None and is_region(parent, "province"):
        raise ValueError(f"'{shown}' is not a district of {parent}; its districts are {_within(parent, 'district')}")
    raise ValueError(f"'{shown}' is not a region code of the reference: {_SHAPES}")


def district(value: str) -> str:
    """A district code of the reference (``61.07``)."""
    if is_region(value, "district"):
        return value
    province = value.split(".", 1)[0]
    if is_region(province, "province"):
        raise ValueError(f"'{value[:32]}' is not a district code; the districts of {province} are "
                         f"{_within(province, 'district')}")
    raise ValueError(f"'{value[:32]}' is not a district code of the reference: a district is written like 61.07 "
                     "(GET /v1/regions lists them)")


REGION_HELP = "a region code of the reference: the province (`61`), a district (`61.07`) or a sub-district (`61.07.07`)"
DISTRICT_HELP = "a district code (`61.07`)"
Region = Annotated[str, AfterValidator(region)]
District = Annotated[str, AfterValidator(district)]
