"""Demo manifests: two letters of the consulate in Kuching registered by BP3MI Kalimantan Barat.

* one that arrived through PLBN Entikong nine days ago: people of Bengkayang, Sambas, Melawi,
  one of Kota Surabaya (Jawa Timur, with her NIK: her notice waits for an agency there) and one
  whose origin is not known; one did not arrive. Bengkayang has located one of its people and
  not (yet) found another, so each of the district's lists has someone in it;
* one that arrived through PLBN Aruk two days ago, people of Bengkayang and Sambas not yet
  located;
* one expected through PLBN Jagoi Babang later this week, of Bengkayang and Melawi.

Safe to run again: a letter already registered is left as it is.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.core.context import Caller
from api.core.preconditions import etag
from api.manifests import repository, service
from api.manifests.schemas import ArrivalsIn, ManifestCreate, ManifestPersonIn, Marking, OutcomeIn
from api.notices.schemas import today_in_kalbar
from models import Agency, AgencyKind, EntryPoint

ISSUER = "BP3MI-KALBAR"
LOCATOR = "DP3A-BENGKAYANG"
ARRIVED_LETTER = "KJRI-KCH/DEP/2026/0412"
RECENT_LETTER = "KJRI-KCH/DEP/2026/0425"
EXPECTED_LETTER = "KJRI-KCH/DEP/2026/0431"

ARRIVED_PEOPLE: list[dict[str, Any]] = [
    {"full_name": "Yohanes Ameng", "sex": "M", "birth_date": "1991-03-12", "origin_district": "61.07",
     "origin_subdistrict": "61.07.07", "nik": "6107071203910002"},
    {"full_name": "Maria Goreti", "sex": "F", "birth_date": "1996-07-02", "origin_district": "61.07",
     "origin_subdistrict": "61.07.07"},
    {"full_name": "Stefanus Ajun", "sex": "M", "origin_district": "61.07"},
    {"full_name": "Nurhayati", "sex": "F", "birth_date": "1993-01-20", "origin_district": "61.01",
     "passport_number": "C1234567"},
    {"full_name": "Rudi Hartono", "sex": "M", "origin_district": "61.10"},
    {"full_name": "Sri Wahyuni", "sex": "F", "birth_date": "1990-05-05", "nik": "3578014505900001"},  # Surabaya
    {"full_name": "Andi", "sex": "M"},  # origin not known
    {"full_name": "Kornelius Awa", "sex": "M", "origin_district": "61.07"},  # did not arrive
]
RECENT_PEOPLE: list[dict[str, Any]] = [
    {"full_name": "Agustinus Liong", "sex": "M", "origin_district": "61.07", "origin_subdistrict": "61.07.11"},
    {"full_name": "Fransiska Ndoi", "sex": "F", "birth_date": "1999-11-30", "origin_district": "61.07"},
    {"full_name": "Siti Rahmah", "sex": "F", "origin_district": "61.01", "origin_subdistrict": "61.01.09"},
]
EXPECTED_PEOPLE: list[dict[str, Any]] = [
    {"full_name": "Paulus Jemat", "sex": "M", "origin_district": "61.07", "origin_subdistrict": "61.07.08"},
    {"full_name": "Lidia Kurniasih", "sex": "F", "origin_district": "61.07"},
    {"full_name": "Hendra Wijaya", "sex": "M", "origin_district": "61.10"},
]


def _caller(agency: Agency, scopes: str) -> Caller:
    return Caller(client_id=f"demo-{agency.code.lower()}", agency=agency.code, agency_kind=AgencyKind(agency.kind),
                  jurisdiction=agency.jurisdiction, scopes=frozenset(scopes.split()), token_id="demo")


async def load_manifests(session: AsyncSession) -> dict[str, Any] | None:
    issuer_agency = await session.get(Agency, ISSUER)
    if issuer_agency is None or await repository.letter_registered(session, ISSUER, ARRIVED_LETTER):
        return None
    issuer = _caller(issuer_agency, "manifests:write manifests:read pii:read")
    today = today_in_kalbar()
    arrived_on = today - timedelta(days=9)

    arrived = await service.create_manifest(session, issuer, ManifestCreate(
        letter_ref=ARRIVED_LETTER, letter_date=arrived_on - timedelta(days=1), expected_date=arrived_on,
        entry_point=EntryPoint.plbn_entikong, note="Deportasi dari Depot Imigresen Semuja, Sarawak",
        persons=[ManifestPersonIn.model_validate(p) for p in ARRIVED_PEOPLE]))
    persons = await repository.persons_of(session, issuer, arrived.id)
    await service.mark_arrivals(session, issuer, arrived.id, etag(arrived.version), ArrivalsIn(
        arrived_on=arrived_on,
        persons=[Marking(person_id=p.id, status="not_arrived" if p.full_name == "Kornelius Awa" else "arrived")
                 for p in persons]))

    located = 0
    locator_agency = await session.get(Agency, LOCATOR)
    if locator_agency is not None:
        locator = _caller(locator_agency, "manifests:read manifests:locate")
        by_name = {p.full_name: p for p in await repository.persons_of(session, locator, arrived.id)}
        first = by_name["Yohanes Ameng"]
        await service.record_outcome(session, locator, arrived.id, first.id, etag(first.version), OutcomeIn(
            outcome="located", village="61.07.07.2001", seen_by="Kepala Desa dan pendamping desa",
            seen_on=arrived_on + timedelta(days=2), note="Sudah di rumah orang tua; didata untuk pelatihan kerja"))
        second = by_name["Maria Goreti"]
        await service.record_outcome(session, locator, arrived.id, second.id, etag(second.version), OutcomeIn(
            outcome="not_located", seen_on=arrived_on + timedelta(days=3),
            note="Keluarga menyebut ia bekerja di Singkawang; dicari lagi minggu depan"))
        located = 1

    recent_on = today - timedelta(days=2)
    recent = await service.create_manifest(session, issuer, ManifestCreate(
        letter_ref=RECENT_LETTER, letter_date=recent_on - timedelta(days=1), expected_date=recent_on,
        entry_point=EntryPoint.plbn_aruk, persons=[ManifestPersonIn.model_validate(p) for p in RECENT_PEOPLE]))
    await service.mark_arrivals(session, issuer, recent.id, etag(recent.version), ArrivalsIn(
        arrived_on=recent_on,
        persons=[Marking(person_id=p.id, status="arrived") for p in await repository.persons_of(session, issuer,
                                                                                               recent.id)]))

    expected_on = min(today + timedelta(days=1), service.week_of(today)[1])  # within this week
    await service.create_manifest(session, issuer, ManifestCreate(
        letter_ref=EXPECTED_LETTER, letter_date=today, expected_date=expected_on,
        entry_point=EntryPoint.plbn_jagoi_babang, persons=[ManifestPersonIn.model_validate(p) for p in EXPECTED_PEOPLE]))
    people = len(ARRIVED_PEOPLE) + len(RECENT_PEOPLE) + len(EXPECTED_PEOPLE)
    return {"manifests": {"created": 3, "people": people, "located": located}}
