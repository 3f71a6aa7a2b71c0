"""The value types of query parameters: one rule for times and one for days, everywhere.

* :data:`Instant`: an RFC 3339 time **with an offset** (``2025-06-12T10:00:00+07:00``,
  ``...Z``). A time without one is refused rather than guessed: the same wall-clock time is
  seven hours apart in Pontianak and in UTC, and a filter that silently picks one returns the
  wrong records. It is handed on in UTC.
* :data:`Day`: a calendar day, ``YYYY-MM-DD``.

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
