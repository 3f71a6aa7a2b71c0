"""NIK (Nomor Induk Kependudukan) structure.

16 digits: province (2) regency (2) sub-district (2) DDMMYY (women: day + 40) serial (4, from
0001). There is no checksum, so only the structure and the date can be checked. The province
and the regency (digits 1-4) must be a province and a regency of the region reference, for every
province of Indonesia (:mod:`models.regions`). The sub-district part is not checked against the
reference: NIKs keep the code of the sub-district where they were issued, and sub-districts
have been split since (and below the regency the reference holds Kalimantan Barat only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from api.core import clock
from models import Sex, regions
from models.regions import is_region

KALBAR = "61"


class InvalidNik(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class NikInfo:
    nik: str
    province: str
    regency: str  # as a region code, ``61.07``
    subdistrict: str  # ``61.07.01``; as issued, not necessarily in today's reference
    sex: Sex
    birth_date: date
    serial: int


_SEPARATORS = str.maketrans("", "", " .-\t")


def normalise(value: str) -> str:
    """Drop the spaces, dots and dashes people type into an NIK."""
    return value.translate(_SEPARATORS)


def _birth_date(dd: int, mm: int, yy: int, today: date) -> date:
    # Two-digit year: the most recent century that does not put the birth in the future.
    year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    born = date(year, mm, dd)  # ValueError for 31 February and the like
    if born > today:
        born = date(year - 100, mm, dd)
    return born


def parse(value: str, *, today: date | None = None) -> NikInfo:
    """Check an NIK's structure; return what it says. Raises :class:`InvalidNik`."""
    return _parse(normalise(value), today or clock.now().date())


@lru_cache(maxsize=4096)  # a batch asks about each NIK twice (validation, then warnings)
def _parse(nik: str, today: date) -> NikInfo:
    if len(nik) != 16 or not nik.isascii() or not nik.isdigit():
        raise InvalidNik("an NIK is 16 digits")
    province, regency, sub = nik[0:2], nik[2:4], nik[4:6]
    if not is_region(province, "province"):
        raise InvalidNik(f"'{province}' is not an Indonesian province code")
    if regency == "00":
        raise InvalidNik("the regency digits (3-4) cannot be 00")
    if not is_region(f"{province}.{regency}", "district"):
        where = regions.get(province)
        raise InvalidNik(f"'{province}.{regency}' is not a regency of {where.name if where else province}")
    if sub == "00":
        raise InvalidNik("the sub-district digits (5-6) cannot be 00")
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex = Sex.M
    if day > 40:
        sex, day = Sex.F, day - 40
    try:
        born = _birth_date(day, month, yy, today)
    except ValueError:
        raise InvalidNik("digits 7-12 are not a date of birth (DDMMYY, women: day + 40)") from None
    serial = int(nik[12:16])
    if serial == 0:
        raise InvalidNik("the serial (digits 13-16) starts at 0001")
    return NikInfo(nik, province, f"{province}.{regency}", f"{province}.{regency}.{sub}", sex, born, serial)


def mismatches(info: NikInfo, *, sex: Sex | None, birth_date: date | None) -> list[str]:
    """What the NIK says that disagrees with the declared sex and birth date (warnings only).

    The birth year is compared on its last two digits: that is all the NIK holds."""
    out = []
    if sex is not None and sex != info.sex:
        out.append(f"the NIK is that of a {'woman' if info.sex == Sex.F else 'man'} but sex is '{sex}'")
    if birth_date is not None and (birth_date.day, birth_date.month, birth_date.year % 100) != (
        info.birth_date.day, info.birth_date.month, info.birth_date.year % 100
    ):
        out.append("the birth date in the NIK (digits 7-12) differs from birth_date")
    return out
