from __future__ import annotations

import sqlalchemy as sa

from api.cli import demo_data as demo
from api.returnees.demo import generate
from models import Returnee


async def test_demo_loads_237_bengkayang_returnees_and_is_idempotent(db):
    first = await demo.load(db)
    assert first["returnees"] == {"created": 537, "updated": 0, "unchanged": 0, "rejected": 0}
    async with db.read() as conn:
        by_district = dict((await conn.execute(
            sa.select(Returnee.origin_district, sa.func.count()).group_by(Returnee.origin_district))).all())
        bengkayang = (await conn.execute(
            sa.select(sa.func.min(Returnee.return_date), sa.func.max(Returnee.return_date))
            .where(Returnee.origin_district == "61.07"))).one()
        persons = (await conn.execute(sa.select(sa.func.count(sa.distinct(Returnee.person_id))))).scalar_one()
    assert by_district["61.07"] == 237
    assert sum(by_district.values()) == 537 and len(by_district) > 5
    assert str(bengkayang[0]) >= "2025-01-01" and str(bengkayang[1]) <= "2025-06-30"
    assert persons == 537
    second = await demo.load(db)
    assert second["returnees"] == {"created": 0, "updated": 0, "unchanged": 537, "rejected": 0}


def test_demo_records_are_deterministic_and_varied():
    records = generate()
    assert records == generate()
    statuses = {r["trafficking_status"] for r in records}
    assert statuses == {"unknown", "not_victim", "possible", "actual"}
    assert {r["return_type"] for r in records} == {"deported", "repatriated", "self_returned"}
    regions = [r["returned_from_region"] for r in records]
    assert regions.count("Sarawak") > len(records) / 2
    subs = {r["origin_subdistrict"] for r in records if r["origin_district"] == "61.07"}
    assert subs <= {f"61.07.{i:02d}" for i in range(1, 18)} and len(subs) > 10
