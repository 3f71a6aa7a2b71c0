"""Synthetic returnees for the demo: 237 from Kabupaten Bengkayang returned January to June 2025
(the figure BP3MI reported to the coordination meeting of 7 August 2025) and 300 from the other
districts of Kalimantan Barat. Names come from Faker's ``id_ID`` locale and every NIK, passport
and phone number is made up. The generator is seeded, so a second run pushes the same records
(same ``source_ref``, same content) and changes nothing.

They are pushed as BP3MI Kalimantan Barat through the same service function as the API's batch.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from faker import Faker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core.context import Caller
from api.returnees import service
from models import Agency, AgencyKind
from models.regions import regions

SEED = 20250807
SOURCE_AGENCY = "BP3MI-KALBAR"
BENGKAYANG = "61.07"
BENGKAYANG_COUNT = 237
OTHER_COUNT = 300

# Border sub-districts send more people across to Sarawak.
_BENGKAYANG_WEIGHTS = {"61.07.07": 6, "61.07.05": 5, "61.07.06": 4, "61.07.12": 3, "61.07.04": 3, "61.07.03": 2}
_DISTRICT_WEIGHTS = {"61.01": 9, "61.03": 8, "61.06": 5, "61.05": 5, "61.72": 4, "61.08": 4, "61.02": 3,
                     "61.04": 3, "61.12": 3, "61.71": 3, "61.09": 2, "61.10": 2, "61.11": 1}
# (region, weight, entry points with weights)
_FROM = [
    ("Sarawak", 70, [("PLBN Entikong", 4), ("PLBN Aruk", 3), ("PLBN Jagoi Babang", 3)]),
    ("Sabah", 15, [("Pelabuhan Tunon Taka Nunukan", 9), ("Bandara Supadio", 1)]),
    ("Johor", 8, [("Bandara Supadio", 7), ("PLBN Entikong", 3)]),
    ("Kuala Lumpur", 7, [("Bandara Supadio", 8), ("PLBN Entikong", 2)]),
]
_SECTORS = [("perkebunan kelapa sawit", 40), ("konstruksi", 20), ("pekerja rumah tangga", 15),
            ("pabrik", 10), ("rumah makan", 8), ("pembalakan kayu", 7)]
_STATUS = [("unknown", 45), ("not_victim", 35), ("possible", 15), ("actual", 5)]
_RETURN_TYPES = [("deported", 55), ("repatriated", 25), ("self_returned", 20)]


def _pick(rng: random.Random, pairs: list[tuple[Any, int]] | dict[Any, int]) -> Any:
    items = list(pairs.items()) if isinstance(pairs, dict) else pairs
    return rng.choices([k for k, _ in items], weights=[w for _, w in items])[0]


def _subdistricts(district: str) -> list[str]:
    return sorted(c for c, r in regions().items() if r.level == "subdistrict" and c.startswith(district + "."))


def _date_between(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def generate() -> list[dict[str, Any]]:
    """The demo records, always the same ones."""
    rng = random.Random(SEED)
    fake = Faker("id_ID")
    fake.seed_instance(SEED)
    districts = sorted(_DISTRICT_WEIGHTS)
    used_niks: set[str] = set()
    records: list[dict[str, Any]] = []
    for n in range(BENGKAYANG_COUNT + OTHER_COUNT):
        if n < BENGKAYANG_COUNT:
            district = BENGKAYANG
            subs = _subdistricts(BENGKAYANG)
            sub = _pick(rng, {s: _BENGKAYANG_WEIGHTS.get(s, 1) for s in subs})
            returned = _date_between(rng, date(2025, 1, 2), date(2025, 6, 30))
        else:
            district = _pick(rng, {d: _DISTRICT_WEIGHTS[d] for d in districts})
            subs = _subdistricts(district)
            sub = rng.choice(subs) if subs else None
            returned = _date_between(rng, date(2025, 1, 2), date(2025, 9, 30))
        sex = "M" if rng.random() < 0.57 else "F"
        age_days = rng.randrange(16 * 365, 52 * 365)
        born = returned - timedelta(days=age_days)
        if sex == "M":
            name = f"{fake.first_name_male()} {fake.last_name_male()}"
        else:
            name = f"{fake.first_name_female()} {fake.last_name_female()}"
        nik = None
        if rng.random() > 0.08:  # some come back with no identity document at all
            day = born.day + (40 if sex == "F" else 0)
            sub_digits = sub[-2:] if sub else "01"
            while True:
                nik = f"61{district[3:5]}{sub_digits}{day:02d}{born:%m%y}{rng.randrange(1, 3000):04d}"
                if nik not in used_niks:
                    break
            used_niks.add(nik)
        region, _, entries = _FROM[[r for r, _, _ in _FROM].index(_pick(rng, [(r, w) for r, w, _ in _FROM]))]
        entry = _pick(rng, entries)
        if district == BENGKAYANG and region == "Sarawak" and rng.random() < 0.5:
            entry = "PLBN Jagoi Babang"
        return_type = _pick(rng, _RETURN_TYPES)
        status = _pick(rng, _STATUS)
        sector = _pick(rng, _SECTORS)
        record: dict[str, Any] = {
            "source_ref": f"BP3MI-KB-2025-{n + 1:05d}",
            "full_name": name,
            "nik": nik,
            "passport_number": f"{rng.choice('BCX')}{rng.randrange(10**6, 10**7)}" if rng.random() < 0.55 else None,
            "phone": f"+628{rng.randrange(10**8, 10**10)}" if rng.random() < 0.7 else None,
            "sex": sex,
            "birth_date": born.isoformat(),
            "origin_district": district,
            "origin_subdistrict": sub,
            "address": f"{fake.street_name()} RT {rng.randrange(1, 20):03d}/RW {rng.randrange(1, 10):03d}",
            "returned_from_country": "MY",
            "returned_from_region": region,
            "return_type": return_type,
            "return_date": returned.isoformat(),
            "entry_point": entry,
            "employer": f"{rng.choice(['Ladang', 'Syarikat', 'Kilang'])} {fake.last_name()} Sdn Bhd",
            "sector": sector,
            "documented": rng.random() < (0.3 if return_type == "deported" else 0.8),
            "trafficking_status": status,
        }
        if status in ("possible", "actual"):
            record["control_methods"] = sorted(set(rng.sample(
                ["withholds_documents", "debt_bondage", "takes_earnings", "excessive_working_hours",
                 "restricts_movement", "threats", "false_promises"], k=rng.randrange(1, 4))))
            record["exploitation_types"] = [
                "domestic_servitude" if sector == "pekerja rumah tangga"
                else ("sexual_exploitation" if sector == "rumah makan" and rng.random() < 0.5 else "forced_labour")
            ]
            record["recruiter_relationship"] = _pick(
                rng, [("agency", 4), ("friend", 3), ("family", 2), ("neighbour", 2), ("unknown", 1)])
        records.append(record)
    return records


async def load_returnees(session: AsyncSession) -> dict[str, Any] | None:
    """Demo loader (see :mod:`api.demo`): push the synthetic returnees as BP3MI Kalbar (as
    the writer it is: its kind and jurisdiction decide where it may write)."""
    agency = await session.get(Agency, SOURCE_AGENCY)
    if agency is None:
        return None
    writer = Caller(client_id=f"demo-{agency.code.lower()}", agency=agency.code, agency_kind=AgencyKind(agency.kind),
                    jurisdiction=agency.jurisdiction, scopes=frozenset({"returnees:write"}), token_id="demo")
    outcome = await service.upsert_batch(session, writer, generate())
    return {"returnees": outcome.counts}
