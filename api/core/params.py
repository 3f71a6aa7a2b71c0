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

from models.regions import is_region, regions

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


def _districts_named() -> str:
    return ", ".join(f"{r.code} {r.name}" for r in regions().values() if r.level == "district")


def _region(value: str) -> str:
    if is_region(value):
        return value
    district = value.rsplit(".", 1)[0] if value.count(".") == 2 else None
    if district is not None and is_region(district, "district"):
        subs = [r.code for r in regions().values() if r.level == "subdistrict" and r.code.startswith(district + ".")]
        raise ValueError(f"'{value[:32]}' is not a sub-district of {district}; its sub-districts are "
                         + ", ".join(subs))
    province = next(r.code for r in regions().values() if r.level == "province")
    raise ValueError(f"'{value[:32]}' is not a region code of the reference. The province is {province}; the "
                     f"districts are {_districts_named()}; a sub-district is written like 61.07.07")


def _district(value: str) -> str:
    if is_region(value, "district"):
        return value
    raise ValueError(f"'{value[:32]}' is not a district code; the districts are {_districts_named()}")


REGION_HELP = "a region code of the reference: the province (`61`), a district (`61.07`) or a sub-district (`61.07.07`)"
DISTRICT_HELP = "a district code (`61.07`)"
Region = Annotated[str, AfterValidator(_region)]
District = Annotated[str, AfterValidator(_district)]
