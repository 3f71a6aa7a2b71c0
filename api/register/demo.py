"""Demo departures for the register: Bengkayang's migrant workers before and after they came back.

Built on the demo returnees (:mod:`api.returnees.demo`, same seed, same NIKs), always the same:

* 80 of Bengkayang's returnees left earlier, as BP3MI's placement data records (procedural);
* 60 of them left again after they came back, recorded by DP3A Bengkayang for their village
  (most not procedural): abroad again;
* 90 people of Bengkayang who left and have not come back (abroad), and 15 of Sambas recorded
  by DP3A Sambas.

Every NIK and name is made up. Village codes are Kemendagri's (the region reference).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from faker import Faker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core.context import Caller
from api.register import service
from api.returnees import demo as returnee_demo
from models import Agency, AgencyKind

SEED = 20250818

# Desa / kelurahan codes of the sub-districts the demo uses (Kemendagri, the region reference).
VILLAGES: dict[str, list[str]] = {sub: [f"{sub}.{n}" for n in numbers.split()] for sub, numbers in {
    "61.01.01": "2001 2002 2003 2004 2005 2006",
    "61.07.01": "2001 2004 2005 2006 2007",
    "61.07.02": "2001 2002 2003 2004 2005 2006",
    "61.07.03": "2001 2002 2003 2004 2005 2007",
    "61.07.04": "1001 1010 2003 2004 2006 2009",
    "61.07.05": "2001 2002 2003 2004 2005 2006",
    "61.07.06": "2001 2002 2003 2004 2005",
    "61.07.07": "2001 2002 2006 2007 2008 2009",
    "61.07.08": "2002 2003 2004 2006 2007 2008",
    "61.07.09": "2001 2002 2003 2004 2005 2006",
    "61.07.10": "2001 2002 2003 2004 2005 2006",
    "61.07.11": "2001 2002 2003 2004 2005 2006",
    "61.07.12": "2002 2004 2005 2006 2007 2008",
    "61.07.13": "2001 2002 2003 2004 2005",
    "61.07.14": "2001 2002 2003 2004",
    "61.07.15": "2001 2002 2003 2004 2005",
    "61.07.16": "2001 2002 2003 2004 2005 2006",
    "61.07.17": "2001 2002 2003 2004",
}.items()}
_DESTINATIONS = [("Sarawak", 70), ("Sabah", 15), ("Johor", 8), ("Kuala Lumpur", 7)]
_SECTORS = ["perkebunan kelapa sawit", "konstruksi", "pekerja rumah tangga", "pabrik", "rumah makan"]


def _pick(rng: random.Random, pairs: list[tuple[Any, int]]) -> Any:
    return rng.choices([k for k, _ in pairs], weights=[w for _, w in pairs])[0]


def _village(rng: random.Random, sub: str | None) -> str | None:
    return rng.choice(VILLAGES[sub]) if sub in VILLAGES else None


def _departure(rng: random.Random, ref: str, person: dict[str, Any], day: date, procedural: bool) -> dict[str, Any]:
    sub = person["origin_subdistrict"]
    return {
        "source_ref": ref, "full_name": person["full_name"], "nik": person.get("nik"), "sex": person["sex"],
        "birth_date": person.get("birth_date"), "origin_district": person["origin_district"],
        "origin_subdistrict": sub, "origin_village": _village(rng, sub), "destination_country": "MY",
        "destination_region": _pick(rng, _DESTINATIONS), "sector": rng.choice(_SECTORS),
        "employer": f"Ladang {rng.choice(['Sinar', 'Bumi', 'Kayu', 'Mas'])} Sdn Bhd" if procedural else None,
        "departure_date": day.isoformat(), "procedural": procedural,
    }


def generate() -> dict[str, list[dict[str, Any]]]:
    """``{"bp3mi": [...], "bengkayang": [...], "sambas": [...], "second_returns": [...]}``."""
    rng = random.Random(SEED)
    fake = Faker("id_ID")
    fake.seed_instance(SEED)
    returned = [r for r in returnee_demo.generate() if r["origin_district"] == "61.07" and r["nik"]]
    out: dict[str, list[dict[str, Any]]] = {"bp3mi": [], "bengkayang": [], "sambas": [], "second_returns": []}
    for n, person in enumerate(returned[:80]):  # they left before they came back (BP3MI's placements)
        back = date.fromisoformat(person["return_date"])
        out["bp3mi"].append(_departure(rng, f"BP3MI-PL-2024-{n + 1:05d}", person,
                                       back - timedelta(days=rng.randrange(200, 700)), procedural=True))
    for n, person in enumerate(returned[80:140]):  # came back, then left again (the village's records)
        back = date.fromisoformat(person["return_date"])
        left = back + timedelta(days=rng.randrange(30, 120))
        out["bengkayang"].append(_departure(rng, f"BKY-DESA-{n + 1:05d}", person, left, rng.random() < 0.25))
        if n < 12:  # ... and came back a second time
            second = dict(person, source_ref=f"BP3MI-KB-2025-R2-{n + 1:04d}", return_type="deported",
                          return_date=(left + timedelta(days=rng.randrange(60, 150))).isoformat())
            out["second_returns"].append(second)
    used: set[str] = {r["nik"] for r in returned}
    for n in range(105):  # left and not back
        district, subs = ("61.07", [s for s in VILLAGES if s.startswith("61.07.")]) if n < 90 else ("61.01", ["61.01.01"])
        sub = _pick(rng, [(s, 6 if s in ("61.07.07", "61.07.05") else 1) for s in subs])
        sex = "M" if rng.random() < 0.57 else "F"
        born = date(1970, 1, 1) + timedelta(days=rng.randrange(0, 30 * 365))
        day = born.day + (40 if sex == "F" else 0)
        while True:
            nik = f"61{district[3:5]}{sub[-2:]}{day:02d}{born:%m%y}{rng.randrange(3000, 9999):04d}"
            if nik not in used:
                break
        used.add(nik)
        name = (f"{fake.first_name_male()} {fake.last_name_male()}" if sex == "M"
                else f"{fake.first_name_female()} {fake.last_name_female()}")
        person = {"full_name": name, "nik": nik, "sex": sex, "birth_date": born.isoformat(),
                  "origin_district": district, "origin_subdistrict": sub}
        left = date(2025, 1, 2) + timedelta(days=rng.randrange(0, 300))
        if n >= 90:
            out["sambas"].append(_departure(rng, f"SBS-DESA-{n - 89:05d}", person, left, rng.random() < 0.4))
        elif n % 3 == 0:
            out["bengkayang"].append(_departure(rng, f"BKY-DESA-N{n + 1:05d}", person, left, False))
        else:
            out["bp3mi"].append(_departure(rng, f"BP3MI-PL-2025-{n + 1:05d}", person, left, True))
    return out


async def _writer(session: AsyncSession, code: str, scope: str) -> Caller | None:
    agency = await session.get(Agency, code)
    if agency is None:
        return None
    return Caller(client_id=f"demo-{code.lower()}", agency=code, agency_kind=AgencyKind(agency.kind),
                  jurisdiction=agency.jurisdiction, scopes=frozenset({scope}), token_id="demo")


async def load_departures(session: AsyncSession) -> dict[str, Any] | None:
    """Demo loader: the departures (BP3MI, DP3A Bengkayang, DP3A Sambas). The returnee demo keeps
    its figures (one return per person): ``generate()["second_returns"]`` are what BP3MI would push
    when 12 of those who left again come back, for a walk-through of the ``repeat_return`` flag."""
    data = generate()
    counts: dict[str, int] = {}
    for code, key in (("BP3MI-KALBAR", "bp3mi"), ("DP3A-BENGKAYANG", "bengkayang"), ("DP3A-SAMBAS", "sambas")):
        writer = await _writer(session, code, "register:write")
        if writer is None:
            continue
        results = await service.upsert_departures(session, writer, data[key])
        counts[code] = sum(1 for r in results if r["status"] != "rejected")
    return {"departures": counts}
