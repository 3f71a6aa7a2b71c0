"""Kemendagri region codes of Kalimantan Barat (the project's copy of the shared reference)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    level: str  # province | district | subdistrict


@lru_cache
def regions() -> dict[str, Region]:
    text = resources.files("models").joinpath("data/kalbar_regions.csv").read_text("utf-8")
    return {r["code"]: Region(r["code"], r["name"], r["level"]) for r in csv.DictReader(text.splitlines())}


def is_region(code: str, level: str | None = None) -> bool:
    region = regions().get(code)
    return region is not None and (level is None or region.level == level)


def covers(jurisdiction: str | None, code: str | None) -> bool:
    """Whether a jurisdiction covers a region code (``61`` covers ``61.07.07``)."""
    if jurisdiction is None or code is None:
        return False
    return code == jurisdiction or code.startswith(jurisdiction + ".")


def province_of(code: str | None) -> str | None:
    return code.split(".", 1)[0] if code else None


def district_code(code: str) -> str:
    """A field validator: ``code`` must be a district (kabupaten / kota) code of the reference."""
    if not is_region(code, "district"):
        raise ValueError(f"'{code}' is not a Kalimantan Barat district code")
    return code
