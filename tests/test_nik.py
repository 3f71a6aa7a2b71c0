from __future__ import annotations

from datetime import date

import pytest

from api.returnees import nik
from models import Sex

TODAY = date(2026, 11, 30)


def test_parse_woman_and_man():
    w = nik.parse("6107074505900001", today=TODAY)
    assert (w.sex, w.birth_date, w.regency, w.subdistrict, w.serial) == (
        Sex.F, date(1990, 5, 5), "61.07", "61.07.07", 1)
    m = nik.parse("6107 0101 0120 0002", today=TODAY)
    assert (m.sex, m.birth_date) == (Sex.M, date(2020, 1, 1))
    assert nik.parse("3174015708059999", today=TODAY).birth_date == date(2005, 8, 17)  # Jakarta
    surabaya = nik.parse("3578014505900001", today=TODAY)  # Kota Surabaya, Jawa Timur
    assert (surabaya.province, surabaya.regency, surabaya.sex) == ("35", "35.78", Sex.F)


@pytest.mark.parametrize("value, why", [
    ("610707450590001", "16 digits"),
    ("61070745059000011", "16 digits"),
    ("61070745059O0001", "16 digits"),
    ("9907074505900001", "province"),
    ("6199074505900001", "not a regency of Kalimantan Barat"),
    ("3599074505900001", "not a regency of Jawa Timur"),  # every province's regencies are checked
    ("6100074505900001", "regency"),
    ("6107004505900001", "sub-district"),
    ("6107073202900001", "date of birth"),  # 32 February
    ("6107077202900001", "date of birth"),  # 72 - 40 = 32
    ("6107070013900001", "date of birth"),  # month 13
    ("6107074105900000", "serial"),
])
def test_invalid(value, why):
    with pytest.raises(nik.InvalidNik, match=why):
        nik.parse(value, today=TODAY)


def test_two_digit_year_never_in_the_future():
    assert nik.parse("6107070112260001", today=TODAY).birth_date == date(1926, 12, 1)
    assert nik.parse("6107071111260001", today=TODAY).birth_date == date(2026, 11, 11)


def test_mismatches_are_reported():
    info = nik.parse("6107074505900001", today=TODAY)
    assert nik.mismatches(info, sex=Sex.F, birth_date=date(1990, 5, 5)) == []
    assert nik.mismatches(info, sex=None, birth_date=None) == []
    out = nik.mismatches(info, sex=Sex.M, birth_date=date(1990, 5, 6))
    assert len(out) == 2 and "woman" in out[0] and "birth date" in out[1]
