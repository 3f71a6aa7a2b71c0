"""Kemendagri region codes: every province and regency (kabupaten / kota) of Indonesia, and for
Kalimantan Barat every kecamatan and desa / kelurahan (``models/data/regions.csv``, built from a
public dataset by ``models/data/build_regions.py``; see ``models/data/README``).

Levels: ``province`` (``61``), ``district`` (kabupaten / kota, ``61.07``), ``subdistrict``
(kecamatan, ``61.07.07``), ``village`` (desa / kelurahan, ``61.07.07.2001``). Below the regency
the reference holds Kalimantan Barat only (:data:`FULL_DEPTH`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

LEVELS = ("province", "district", "subdistrict", "village")
KALBAR = "61"
#: Provinces whose kecamatan and desa the reference holds.
FULL_DEPTH = frozenset({KALBAR})


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    level: str  # province | district | subdistrict | village
    parent: str | None


@lru_cache
def regions() -> dict[str, Region]:
    text = resources.files("models").joinpath("data/regions.csv").read_text("utf-8")
    return {r["code"]: Region(r["code"], r["name"], r["level"], r["parent"] or None)
            for r in csv.DictReader(text.splitlines())}


@lru_cache
def children() -> dict[str | None, tuple[Region, ...]]:
    """Each code's regions one level down, in code order (``None``: the provinces)."""
    out: dict[str | None, list[Region]] = {}
    for r in regions().values():
        out.setdefault(r.parent, []).append(r)
    return {k: tuple(v) for k, v in out.items()}


def get(code: str) -> Region | None:
    return regions().get(code)


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


def district_of(code: str | None) -> str | None:
    """The regency (``61.07``) a code lies in; ``None`` for a province or no code."""
    if not code or code.count(".") < 1:
        return None
    return ".".join(code.split(".")[:2])


def held_to_depth(code: str) -> bool:
    """Whether the reference holds the kecamatan and desa under ``code``'s province."""
    return province_of(code) in FULL_DEPTH


