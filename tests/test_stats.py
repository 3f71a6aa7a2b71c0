"""Statistics: counts in SQL within the caller's jurisdiction, small-cell suppression (primary
and complementary), age groups, months, CSV, validation, scopes, referral overdue counts, audit."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from api.core import clock
from api.core.unit import operator_unit
from api.stats.service import suppressed_cells
from models import AgencyKind, AuditEvent, AuditSubject, Referral
from tests.conftest import Party, assert_problem
from tests.returnee_rows import insert_returnees

SOURCE = "BP3MI-KALBAR"


@pytest.fixture
async def province(make_party) -> Party:
    await make_party(SOURCE, "61", "returnees:write", kind=AgencyKind.migrant_protection)
    return await make_party("DP3A-KALBAR", "61", "stats:read", kind=AgencyKind.women_child_protection)


@pytest.fixture
async def sambas(make_party, province) -> Party:
    return await make_party("GUGUS-TPPO-SAMBAS", "61.01", "stats:read", kind=AgencyKind.task_force)


async def stats(client, party: Party, path: str = "returnees", **params: Any) -> Any:
    r = await client.get(f"/v1/stats/{path}", params=params, headers=await party.headers())
    assert r.status_code == 200, r.text
    return r.json()


def by(rows: list[dict[str, Any]], *dims: str) -> dict[Any, dict[str, Any]]:
    return {(row[dims[0]] if len(dims) == 1 else tuple(row[d] for d in dims)): row for row in rows}


async def known_set(db) -> None:
    """61.07 Bengkayang: 12 deported in June 2025 (possible), 7 repatriated in July 2025 (actual);
    61.01 Sambas: 6 deported in June 2025, 3 repatriated in August 2025 (not_victim)."""
    await insert_returnees(db, SOURCE, "61.07", 12, return_date=date(2025, 6, 10))
    await insert_returnees(db, SOURCE, "61.07", 7, return_type="repatriated", return_date=date(2025, 7, 3),
                           trafficking_status="actual")
    await insert_returnees(db, SOURCE, "61.01", 6, return_date=date(2025, 6, 20))
    await insert_returnees(db, SOURCE, "61.01", 3, return_type="repatriated", return_date=date(2025, 8, 1),
                           trafficking_status="not_victim")


# --- counts and jurisdiction -------------------------------------------------------------------


async def test_counts_by_district_and_month(client, db, province):
    await known_set(db)
    out = await stats(client, province, group_by="district,month")
    assert out["group_by"] == ["district", "month"] and out["threshold"] == 5
    rows = by(out["rows"], "district", "month")
    assert set(rows) == {("61.07", "2025-06"), ("61.07", "2025-07"), ("61.01", "2025-06"), ("61.01", "2025-08")}
    # 3 is under the threshold; 6 beside it in the 61.01 line would give it away against the 61.01
    # total (9), then 12 against the June total (18), then 7 against the 61.07 total: a sparse
    # table hides it all, the total stays
    assert rows[("61.01", "2025-08")] == {"district": "61.01", "month": "2025-08", "count": None, "suppressed": True}
    assert all(r["suppressed"] and r["count"] is None for r in out["rows"])
    bengkayang = await stats(client, province, group_by=["district", "month"], district="61.07")
    assert bengkayang["rows"] == [
        {"district": "61.07", "month": "2025-06", "count": 12, "suppressed": False},
        {"district": "61.07", "month": "2025-07", "count": 7, "suppressed": False},
    ]
    assert out["total"] == 28


async def test_facts_of_the_coordination_meeting(client, db, province):
    """How many PMI from Bengkayang were repatriated or deported this year, and which are suspected victims."""
    await known_set(db)
    out = await stats(client, province, group_by=["return_type", "trafficking_status"], district="61.07",
                      **{"from": "2025-01-01", "to": "2025-12-31"})
    assert out["total"] == 19
    rows = by(out["rows"], "return_type", "trafficking_status")
    assert rows[("deported", "possible")]["count"] == 12
    assert rows[("repatriated", "actual")]["count"] == 7
    only_june = await stats(client, province, group_by="district", **{"from": "2025-06-01", "to": "2025-06-30"})
    assert {r["district"]: r["count"] for r in only_june["rows"]} == {"61.01": 6, "61.07": 12}
    possible = await stats(client, province, trafficking_status="possible", return_type="deported")
    assert possible["rows"] == [{"count": 18, "suppressed": False}] and possible["total"] == 18


async def test_district_caller_counts_only_its_district(client, db, province, sambas):
    await known_set(db)
    own = await stats(client, sambas, group_by="district")
    assert [r["district"] for r in own["rows"]] == ["61.01"]
    assert own["rows"][0]["count"] == 9 and own["total"] == 9
    # asking for another district gives nothing, not its figures
    other = await stats(client, sambas, group_by="district", district="61.07")
    assert other["rows"] == [] and other["total"] == 0
    everything = await stats(client, province, group_by="district")
    assert {r["district"]: r["count"] for r in everything["rows"]} == {"61.01": 9, "61.07": 19}


async def test_sex_and_country_dimensions(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 10)  # alternating M / F: 5 and 5
    await insert_returnees(db, SOURCE, "61.07", 10, returned_from_country="SG")
    await insert_returnees(db, SOURCE, "61.07", 5, returned_from_country="BN")  # 3 M, 2 F
    out = await stats(client, province, group_by=["sex", "returned_from_country"])
    rows = by(out["rows"], "sex", "returned_from_country")
    assert rows[("M", "SG")]["count"] == 5 and rows[("F", "SG")]["count"] == 5
    # BN: both small (they cover each other in the BN column); in the M line the smallest
    # published cell (M, MY) joins them, then (F, MY) so that the MY column is covered too
    hidden = {k for k, r in rows.items() if r["suppressed"]}
    assert hidden == {("M", "BN"), ("F", "BN"), ("M", "MY"), ("F", "MY")}
    assert out["total"] == 25


# --- suppression ----------------------------------------------------------------------------------


async def test_small_cell_is_suppressed_with_its_complement(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 20)
    await insert_returnees(db, SOURCE, "61.08", 9)
    await insert_returnees(db, SOURCE, "61.01", 3)
    out = await stats(client, province, group_by="district")
    rows = by(out["rows"], "district")
    assert rows["61.01"] == {"district": "61.01", "count": None, "suppressed": True}
    # one suppressed cell next to a total would give it away: the smallest other cell goes too
    assert rows["61.08"] == {"district": "61.08", "count": None, "suppressed": True}
    assert rows["61.07"]["count"] == 20
    assert out["total"] == 32
    assert "Returnee" not in orjson.dumps(out).decode()  # no personal data, only counts


async def test_total_under_the_threshold_is_suppressed(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 3)
    out = await stats(client, province)
    assert out["rows"] == [{"count": None, "suppressed": True}] and out["total"] is None
    empty = await stats(client, province, district="61.99")
    assert empty["rows"] == [] and empty["total"] == 0


def test_complementary_rule():
    # one small cell in a line: the next smallest joins it
    assert suppressed_cells([("a",), ("b",), ("c",)], [3, 9, 20], 5) == {0, 1}
    # two small cells summing under the threshold (1 + 1 would reveal both): one more
    assert suppressed_cells([("a",), ("b",), ("c",)], [1, 1, 20], 5) == {0, 1, 2}
    # two small cells adding up to the threshold protect each other
    assert suppressed_cells([("a",), ("b",), ("c",)], [2, 3, 20], 5) == {0, 1}
    assert suppressed_cells([("a",), ("b",)], [7, 9], 5) == set()
    # two dimensions: every row and every column of the table is protected
    keys = [("d1", "m1"), ("d1", "m2"), ("d2", "m1"), ("d2", "m2")]
    sup = suppressed_cells(keys, [2, 10, 12, 30], 5)
    assert sup == {0, 1, 2, 3} or sup >= {0, 1, 2}
    for line in (({0, 1}), ({2, 3}), ({0, 2}), ({1, 3})):
        hidden = line & sup
        assert not hidden or len(hidden) >= 2


async def test_threshold_can_be_raised_not_lowered(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 7)
    await insert_returnees(db, SOURCE, "61.01", 12)
    lower = await stats(client, province, group_by="district", threshold=2)
    assert lower["threshold"] == 5
    assert by(lower["rows"], "district")["61.07"]["count"] == 7
    higher = await stats(client, province, group_by="district", threshold=10)
    assert higher["threshold"] == 10
    rows = by(higher["rows"], "district")
    assert rows["61.07"]["suppressed"] and rows["61.01"]["suppressed"]
    assert higher["total"] == 19


# --- dimensions ----------------------------------------------------------------------------------


async def test_age_groups_at_the_boundaries(client, db, province):
    day = date(2025, 6, 15)
    # 17 on the return date (18th birthday the day after) vs 18 (birthday that very day)
    await insert_returnees(db, SOURCE, "61.07", 5, birth_date=date(2007, 6, 16), return_date=day)
    await insert_returnees(db, SOURCE, "61.07", 6, birth_date=date(2007, 6, 15), return_date=day)
    await insert_returnees(db, SOURCE, "61.07", 7, birth_date=date(1965, 6, 15), return_date=day)  # 60
    await insert_returnees(db, SOURCE, "61.07", 8, birth_date=date(1965, 12, 31), return_date=day)  # 59
    await insert_returnees(db, SOURCE, "61.07", 9, birth_date=None, return_date=day)
    await insert_returnees(db, SOURCE, "61.07", 5, birth_date=date(2000, 2, 29), return_date=date(2025, 2, 28))  # 24
    await insert_returnees(db, SOURCE, "61.07", 5, birth_date=date(2000, 2, 29), return_date=date(2025, 3, 1))  # 25
    out = await stats(client, province, group_by="age_group")
    counts = {r["age_group"]: r["count"] for r in out["rows"]}
    assert counts == {"0-17": 5, "18-24": 11, "25-34": 5, "45-59": 8, "60+": 7, "unknown": 9}


async def test_month_format(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 5, return_date=date(2025, 1, 31))
    await insert_returnees(db, SOURCE, "61.07", 5, return_date=date(2024, 12, 1))
    out = await stats(client, province, group_by="month")
    assert [r["month"] for r in out["rows"]] == ["2024-12", "2025-01"]


async def test_month_with_age_group(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 6, birth_date=date(2000, 1, 1), return_date=date(2025, 6, 1))
    await insert_returnees(db, SOURCE, "61.07", 5, birth_date=date(1990, 1, 1), return_date=date(2025, 7, 1))
    out = await stats(client, province, group_by="month,age_group,district")
    assert [(r["month"], r["age_group"], r["district"], r["count"]) for r in out["rows"]] == [
        ("2025-06", "25-34", "61.07", 6), ("2025-07", "35-44", "61.07", 5)]


# --- CSV, validation, scopes, audit ----------------------------------------------------------------


async def test_csv(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 20)
    await insert_returnees(db, SOURCE, "61.08", 9)
    await insert_returnees(db, SOURCE, "61.01", 3)
    r = await client.get("/v1/stats/returnees", params={"group_by": "district"},
                         headers=await province.headers(Accept="text/csv"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows == [["district", "count", "suppressed"], ["61.01", "", "true"], ["61.07", "20", "false"],
                    ["61.08", "", "true"]]


async def test_unknown_group_by_is_422(client, province):
    r = await client.get("/v1/stats/returnees", params={"group_by": "district,full_name"},
                         headers=await province.headers())
    body = assert_problem(r, 422, "validation-error")
    assert body["errors"][0]["field"].endswith("group_by") and "full_name" in body["errors"][0]["message"]
    r = await client.get("/v1/stats/referrals", params={"group_by": "sex"}, headers=await province.headers())
    assert_problem(r, 422, "validation-error")


async def test_stats_read_is_required(client, make_party, province):
    writer = await make_party("BP3MI-OTHER", "61", "returnees:write referrals:read")
    for path in ("returnees", "referrals"):
        r = await client.get(f"/v1/stats/{path}", headers=await writer.headers())
        body = assert_problem(r, 403)
        assert body["required_scope"] == "stats:read"


async def test_each_call_is_audited(client, db, province):
    await known_set(db)
    await stats(client, province, group_by="district,month", district="61.07", **{"from": "2025-01-01"})
    await stats(client, province, "referrals", group_by="status")
    async with db.sessionmaker() as s:
        events = (await s.execute(sa.select(AuditEvent.id, AuditEvent.action, AuditEvent.agency, AuditEvent.body)
                                  .where(AuditEvent.action.like("stats.%")).order_by(AuditEvent.seq))).all()
        subjects = (await s.execute(sa.select(sa.func.count()).select_from(AuditSubject).where(
            AuditSubject.event_id.in_([e.id for e in events])))).scalar_one()
    assert [(e.action, e.agency) for e in events] == [("stats.returnees", "DP3A-KALBAR"),
                                                     ("stats.referrals", "DP3A-KALBAR")]
    detail = orjson.loads(events[0].body)["detail"]
    assert detail["group_by"] == ["district", "month"]
    assert detail["filters"] == {"from": "2025-01-01", "district": "61.07"}
    assert detail["threshold"] == 5
    assert subjects == 0


# --- referrals -------------------------------------------------------------------------------------

T0 = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


async def add_referrals(db, n: int, *, to: str, status: str = "requested", reason: str = "suspected_tppo_victim",
                        urgency: str = "normal", created: datetime = T0, due: timedelta = timedelta(days=7),
                        frm: str = SOURCE, to_region: str = "61.07", subject_region: str | None = "61.07") -> None:
    async with operator_unit(db, "test") as session:
        for _ in range(n):
            session.add(Referral(from_agency=frm, to_agency=to, sender_ref=uuid.uuid4().hex[:12], status=status,
                                 from_region="61", to_region=to_region, subject_region=subject_region,
                                 reason=reason, legal_basis="UU-21-2007:51", urgency=urgency,
                                 processing_basis="vital_interest", due_at=created + due, created_at=created,
                                 updated_at=created))


@pytest.fixture
async def referral_world(make_party, province) -> dict[str, Party]:
    polres = await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read", kind=AgencyKind.police)
    await make_party("DINSOS-SAMBAS", "61.01", "referrals:read", kind=AgencyKind.social_services)
    return {
        "bp3mi": await make_party(SOURCE, "61", "stats:read", kind=AgencyKind.migrant_protection),
        "polres": polres,
        "oversight": await make_party("GUGUS-TPPO-BENGKAYANG", "61.07", "stats:read", kind=AgencyKind.task_force),
        "sambas": await make_party("GUGUS-TPPO-SAMBAS", "61.01", "stats:read", kind=AgencyKind.task_force),
    }


async def test_referral_counts_with_overdue(client, db, referral_world):
    await add_referrals(db, 6, to="POLRES-BENGKAYANG")  # due 9 June, still requested
    await add_referrals(db, 5, to="POLRES-BENGKAYANG", status="completed")
    await add_referrals(db, 7, to="POLRES-BENGKAYANG", status="in-progress", urgency="high",
                        due=timedelta(hours=72), created=datetime(2025, 7, 1, 23, 30, tzinfo=UTC))  # due 4 July
    await add_referrals(db, 5, to="DINSOS-SAMBAS", to_region="61.01", subject_region="61.01",
                        reason="social_rehabilitation")
    ov = referral_world["oversight"]
    with clock.frozen(datetime(2025, 7, 2, tzinfo=UTC)):
        out = await stats(client, ov, "referrals", group_by="status")
    rows = by(out["rows"], "status")
    assert rows["requested"] == {"status": "requested", "count": 6, "overdue": 6, "suppressed": False}
    assert rows["completed"]["overdue"] == 0 and rows["in-progress"]["overdue"] == 0
    assert out["total"] == 18  # the Sambas referrals are not the Bengkayang task force's
    with clock.frozen(datetime(2025, 7, 10, tzinfo=UTC)):
        out = await stats(client, ov, "referrals", group_by=["month", "urgency"])
    rows = by(out["rows"], "month", "urgency")
    assert rows[("2025-06", "normal")]["count"] == 11 and rows[("2025-06", "normal")]["overdue"] == 6
    assert rows[("2025-07", "high")] == {"month": "2025-07", "urgency": "high", "count": 7, "overdue": 7,
                                         "suppressed": False}
    # the sender sees all it sent, by receiver and reason
    with clock.frozen(datetime(2025, 7, 10, tzinfo=UTC)):
        sent = await stats(client, referral_world["bp3mi"], "referrals", group_by="to_agency,reason")
    assert by(sent["rows"], "to_agency", "reason")[("DINSOS-SAMBAS", "social_rehabilitation")]["count"] == 5
    assert sent["total"] == 23
    # filters
    with clock.frozen(datetime(2025, 7, 10, tzinfo=UTC)):
        june = await stats(client, ov, "referrals", **{"from": "2025-06-01", "to": "2025-06-30"}, status="requested")
    assert june["rows"] == [{"count": 6, "overdue": 6, "suppressed": False}]


async def test_referral_suppression_hides_overdue_too(client, db, referral_world):
    await add_referrals(db, 2, to="POLRES-BENGKAYANG", reason="legal_aid")
    await add_referrals(db, 9, to="POLRES-BENGKAYANG")
    await add_referrals(db, 20, to="POLRES-BENGKAYANG", reason="reintegration")
    with clock.frozen(datetime(2025, 7, 1, tzinfo=UTC)):
        out = await stats(client, referral_world["oversight"], "referrals", group_by="reason")
    rows = by(out["rows"], "reason")
    assert rows["legal_aid"] == {"reason": "legal_aid", "count": None, "overdue": None, "suppressed": True}
    assert rows["suspected_tppo_victim"]["suppressed"] and rows["suspected_tppo_victim"]["overdue"] is None
    assert rows["reintegration"] == {"reason": "reintegration", "count": 20, "overdue": 20, "suppressed": False}
    # a district task force elsewhere counts none of them
    other = await stats(client, referral_world["sambas"], "referrals", group_by="reason")
    assert other["rows"] == [] and other["total"] == 0


async def test_referral_csv(client, db, referral_world):
    await add_referrals(db, 6, to="POLRES-BENGKAYANG")
    with clock.frozen(datetime(2025, 6, 3, tzinfo=UTC)):
        r = await client.get("/v1/stats/referrals", params={"group_by": "to_agency"},
                             headers=await referral_world["oversight"].headers(Accept="text/csv"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(r.text))) == [["to_agency", "count", "overdue", "suppressed"],
                                                     ["POLRES-BENGKAYANG", "6", "0", "false"]]
