"""The demo world the suite's tests share (tests/demo_world.py): each user gets a database and
an answer of the loader of its own, and the demo is of the day the user runs on."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

from api.agencies import service as agencies
from api.agencies.schemas import AgencyCreate
from api.core import clock
from api.core.db import Database
from api.core.unit import operator_unit
from api.manifests.demo import EXPECTED_LETTER
from api.notices.schemas import today_in_kalbar
from models import Agency, AgencyKind, Manifest
from tests.demo_world import DemoTemplate, module_settings


async def _agencies_and_letter_day(url: str) -> tuple[set[str], date]:
    """The agencies of a demo database, and the day of its letter of this week's arrivals
    (the demo writes it "today")."""
    db = Database(module_settings(url))
    try:
        async with db.read() as conn:
            codes = set((await conn.execute(sa.select(Agency.code))).scalars())
            day = (await conn.execute(
                sa.select(Manifest.letter_date).where(Manifest.letter_ref == EXPECTED_LETTER))).scalar_one()
        return codes, day
    finally:
        await db.dispose()


async def test_each_copy_is_a_world_of_its_own(demo_template: DemoTemplate, tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    with demo_template.copy(tmp_path / "a") as a, demo_template.copy(tmp_path / "b") as b:
        assert a.url != b.url
        assert a.demo == b.demo and set(a.demo["clients"]) >= {"BP3MI-KALBAR", "SINERGI-OPERATOR"}
        a.demo["clients"].clear()  # the loader's answer is each user's own
        assert b.demo["clients"]

        db = Database(a.settings)
        try:
            async with operator_unit(db, "test") as session:
                await agencies.create_agency(session, AgencyCreate(
                    code="ONLY-IN-A", name="Only in a", kind=AgencyKind.other, jurisdiction="61.01"))
        finally:
            await db.dispose()
        in_a, _ = await _agencies_and_letter_day(a.url)
        in_b, _ = await _agencies_and_letter_day(b.url)
        assert "ONLY-IN-A" in in_a and "ONLY-IN-A" not in in_b
    with demo_template.copy(tmp_path / "c") as c:  # the template is untouched
        in_c, day = await _agencies_and_letter_day(c.url)
        assert in_c == in_b and "BP3MI-KALBAR" in in_c
        assert day == today_in_kalbar()
        assert c.demo["clients"] == b.demo["clients"]


async def test_a_frozen_clock_gets_a_demo_of_its_own_day(demo_template: DemoTemplate, tmp_path: Path):
    (tmp_path / "frozen").mkdir()
    (tmp_path / "now").mkdir()
    with clock.frozen(datetime(2025, 9, 10, 3, 0, tzinfo=UTC)), demo_template.copy(tmp_path / "frozen") as frozen:
        codes, day = await _agencies_and_letter_day(frozen.url)
        assert day == date(2025, 9, 10) and "BP3MI-KALBAR" in codes
        assert set(frozen.demo["clients"]) == codes
    with demo_template.copy(tmp_path / "now") as now:  # the shared template stays of today
        _, day = await _agencies_and_letter_day(now.url)
        assert day == today_in_kalbar()
