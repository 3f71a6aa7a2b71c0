"""Statistics: counts in SQL within the caller's jurisdiction, rounded by cell key (fixed random
rounding to base 5) with small cells suppressed; the differencing attacks of the penetration
test replayed on the demo data; age groups, months, CSV, validation and bounds, scopes,
referral overdue counts, audit."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from api.core import clock
from api.core.unit import operator_unit
from api.returnees.demo import generate, load_returnees
from api.stats import service
from api.stats.service import KEY_SPACE, publish, record_key, rounded
from models import AgencyKind, AuditEvent, AuditSubject, Referral
from tests.conftest import Party, assert_problem
from tests.returnee_rows import insert_returnees

SOURCE = "BP3MI-KALBAR"
BASE = 5  # the configured threshold, and so the rounding base


@pytest.fixture
async def province(make_party) -> Party:
    await make_party(SOURCE, "61", "returnees:write", kind=AgencyKind.migrant_protection)
    return await make_party("DP3A-KALBAR", "61", "stats:read", kind=AgencyKind.women_child_protection)


@pytest.fixture
async def sambas(make_party, province) -> Party:
    return await make_party("GUGUS-TPPO-SAMBAS", "61.01", "stats:read", kind=AgencyKind.task_force)


async def stats(client, party: Party, path: str = "returnees", **params: Any) -> Any:
    # one token per party while the clock (which tests may freeze) stays within a minute of its issue
    issued, headers = party.__dict__.get("stats_token", (None, None))
    if issued is None or not timedelta(0) <= clock.now() - issued < timedelta(minutes=1):
        issued, headers = clock.now(), await party.headers()
        party.__dict__["stats_token"] = (issued, headers)
    r = await client.get(f"/v1/stats/{path}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def by(rows: list[dict[str, Any]], *dims: str) -> dict[Any, dict[str, Any]]:
    return {(row[dims[0]] if len(dims) == 1 else tuple(row[d] for d in dims)): row for row in rows}


def roundings(n: int) -> set[int]:
    """What a true count ``n`` (at least the threshold) may be published as."""
    low = n - n % BASE
    return {n} if n % BASE == 0 else {low, low + BASE}


async def known_set(db) -> None:
    """61.07 Bengkayang: 10 deported in June 2025 (possible), 5 repatriated in July 2025 (actual);
    61.01 Sambas: 15 deported in June 2025, 3 repatriated in August 2025 (not_victim)."""
    await insert_returnees(db, SOURCE, "61.07", 10, return_date=date(2025, 6, 10))
    await insert_returnees(db, SOURCE, "61.07", 5, return_type="repatriated", return_date=date(2025, 7, 3),
                           trafficking_status="actual")
    await insert_returnees(db, SOURCE, "61.01", 15, return_date=date(2025, 6, 20))
    await insert_returnees(db, SOURCE, "61.01", 3, return_type="repatriated", return_date=date(2025, 8, 1),
                           trafficking_status="not_victim")


# --- counts and jurisdiction -------------------------------------------------------------------


async def test_counts_by_district_and_month(client, db, province):
    await known_set(db)
    out = await stats(client, province, group_by="district,month")
    assert out["group_by"] == ["district", "month"] and out["threshold"] == 5 and out["rounding_base"] == 5
    # multiples of the base are published as they are; 3 is suppressed, and nothing else needs to be
    assert out["rows"] == [
        {"district": "61.01", "month": "2025-06", "count": 15, "suppressed": False},
        {"district": "61.01", "month": "2025-08", "count": None, "suppressed": True},
        {"district": "61.07", "month": "2025-06", "count": 10, "suppressed": False},
        {"district": "61.07", "month": "2025-07", "count": 5, "suppressed": False},
    ]
    assert out["total"] in roundings(33)  # its own cell: not the sum of the rows
    bengkayang = await stats(client, province, group_by=["district", "month"], district="61.07")
    assert bengkayang["rows"] == out["rows"][2:] and bengkayang["total"] == 15


async def test_facts_of_the_coordination_meeting(client, db, province):
    """How many PMI from Bengkayang were repatriated or deported this year, and which are suspected victims."""
    await known_set(db)
    out = await stats(client, province, group_by=["return_type", "trafficking_status"], district="61.07",
                      **{"from": "2025-01-01", "to": "2025-12-31"})
    assert out["total"] == 15
    rows = by(out["rows"], "return_type", "trafficking_status")
    assert rows[("deported", "possible")]["count"] == 10
    assert rows[("repatriated", "actual")]["count"] == 5
    only_june = await stats(client, province, group_by="district", **{"from": "2025-06-01", "to": "2025-06-30"})
    assert {r["district"]: r["count"] for r in only_june["rows"]} == {"61.01": 15, "61.07": 10}
    possible = await stats(client, province, trafficking_status="possible", return_type="deported")
    assert possible["rows"] == [{"count": 25, "suppressed": False}] and possible["total"] == 25


async def test_district_caller_counts_only_its_district(client, db, province, sambas):
    await known_set(db)
    own = await stats(client, sambas, group_by="district")
    assert [r["district"] for r in own["rows"]] == ["61.01"]
    assert own["rows"][0]["count"] in roundings(18)
    # asking for another district gives nothing, not its figures
    other = await stats(client, sambas, group_by="district", district="61.07")
    assert other["rows"] == [] and other["total"] == 0
    everything = await stats(client, province, group_by="district")
    # the same records, whoever asks: the same published figure
    assert by(everything["rows"], "district")["61.01"]["count"] == own["rows"][0]["count"] == own["total"]
    assert by(everything["rows"], "district")["61.07"]["count"] == 15


async def test_sex_and_country_dimensions(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 10)  # alternating M / F: 5 and 5
    await insert_returnees(db, SOURCE, "61.07", 10, returned_from_country="SG")
    await insert_returnees(db, SOURCE, "61.07", 5, returned_from_country="BN")  # 3 M, 2 F
    out = await stats(client, province, group_by=["sex", "returned_from_country"])
    rows = by(out["rows"], "sex", "returned_from_country")
    assert {k: r["count"] for k, r in rows.items()} == {
        ("M", "MY"): 5, ("F", "MY"): 5, ("M", "SG"): 5, ("F", "SG"): 5, ("M", "BN"): None, ("F", "BN"): None}
    assert out["total"] == 25


# --- the rule: rounding by cell key, suppression ----------------------------------------------------


def test_rounding_is_unbiased_bounded_and_decided_by_the_key():
    keys = range(0, KEY_SPACE, 997)  # evenly over the key space
    for n in range(5, 40):
        values = [rounded(n, key, BASE) for key in keys]
        assert set(values) == roundings(n)
        assert abs(sum(values) / len(values) - n) < 0.001  # unbiased: on average the true count
        assert all(abs(v - n) < BASE and v % BASE == 0 for v in values)
    # the key alone decides: a 7 (remainder 2) goes up for the lowest 2/5 of keys
    assert rounded(7, 0, BASE) == 10 and rounded(7, KEY_SPACE * 2 // 5 - 1, BASE) == 10
    assert rounded(7, KEY_SPACE * 2 // 5 + 1, BASE) == 5 and rounded(7, KEY_SPACE - 1, BASE) == 5


def test_what_is_published():
    assert publish(0, 123, BASE, 5) == 0
    assert [publish(n, key, BASE, 5) for n in (1, 2, 3, 4) for key in (0, KEY_SPACE - 1)] == [None] * 8
    assert publish(5, 0, BASE, 5) == 5 and publish(9, KEY_SPACE - 1, BASE, 5) == 5
    # a raised threshold: under it suppressed, and so is a count rounded under it
    assert publish(9, 0, BASE, 10) is None
    assert publish(13, 0, BASE, 12) == 15 and publish(13, KEY_SPACE - 1, BASE, 12) is None


async def test_small_cell_is_suppressed_and_the_rest_rounded(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 20)
    await insert_returnees(db, SOURCE, "61.08", 9)
    await insert_returnees(db, SOURCE, "61.01", 3)
    out = await stats(client, province, group_by="district")
    rows = by(out["rows"], "district")
    assert rows["61.01"] == {"district": "61.01", "count": None, "suppressed": True}
    # no complementary suppression is needed: 9 is published rounded (5 or 10), and every
    # difference of published figures is a multiple of 5, never the 3
    assert rows["61.08"]["count"] in roundings(9) and not rows["61.08"]["suppressed"]
    assert rows["61.07"]["count"] == 20
    assert out["total"] in roundings(32)
    assert (out["total"] - rows["61.07"]["count"] - rows["61.08"]["count"]) % BASE == 0
    assert "Returnee" not in orjson.dumps(out).decode()  # no personal data, only counts


async def test_total_under_the_threshold_is_suppressed(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 3)
    out = await stats(client, province)
    assert out["rows"] == [{"count": None, "suppressed": True}] and out["total"] is None
    empty = await stats(client, province, district="61.01")  # a district with no record
    assert empty["rows"] == [] and empty["total"] == 0


async def test_a_cell_is_rounded_by_the_key_of_its_records(client, db, province):
    """The published value is the documented function of the records: the cell key is the sum
    of the record keys (HMAC-SHA256 under the key derived from the index key) modulo 2**24."""
    day = date(2025, 6, 10)
    await insert_returnees(db, SOURCE, "61.07", 7, return_date=day)
    await insert_returnees(db, SOURCE, "61.07", 11, return_date=day + timedelta(days=1))
    secret = service.stats_secret(db.settings.index_key_bytes)
    k1 = record_key(secret, "returnee|61.07|2025-06-10")
    k2 = record_key(secret, "returnee|61.07|2025-06-11")
    out = await stats(client, province, group_by="district")
    assert out["rows"][0]["count"] == rounded(18, (7 * k1 + 11 * k2) % KEY_SPACE, BASE)
    first = await stats(client, province, to="2025-06-10")
    assert first["total"] == rounded(7, 7 * k1 % KEY_SPACE, BASE)


async def test_record_keys_in_sql_are_hmac_sha256(db):
    """Both databases compute :func:`record_key` in SQL (PostgreSQL with its built-in sha256,
    SQLite through a function registered on the connection)."""
    async with operator_unit(db, "test") as session:
        dialect, secret, _ = await service.prepare(session)
        messages = ["returnee|61.07|2025-06-10", "referral|" + uuid.uuid4().hex, "ü|" + "x" * 100]
        got = [(await session.execute(sa.select(service._key_sql(dialect, secret, sa.literal(m))))).scalar_one()
               for m in messages]
        day = (await session.execute(sa.select(
            service._returnee_key_sql(dialect, secret, sa.literal("61.07"), sa.literal(date(2025, 6, 10)))
        ))).scalar_one()
    assert got == [record_key(secret, m) for m in messages]
    assert day == got[0]


async def test_threshold_can_be_raised_not_lowered(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 7)
    await insert_returnees(db, SOURCE, "61.01", 12)
    lower = await stats(client, province, group_by="district", threshold=2)
    assert lower["threshold"] == 5
    assert by(lower["rows"], "district")["61.07"]["count"] in roundings(7)
    higher = await stats(client, province, group_by="district", threshold=10)
    assert higher["threshold"] == 10 and higher["rounding_base"] == 5
    rows = by(higher["rows"], "district")
    assert rows["61.07"]["suppressed"]
    # the rounding does not depend on the caller's threshold: the same value as before
    assert rows["61.01"]["count"] == by(lower["rows"], "district")["61.01"]["count"]
    assert higher["total"] in roundings(19)
    assert (await stats(client, province, group_by="district", threshold=13))["rows"][0]["suppressed"]


# --- the attacks of the penetration test, replayed on the demo data ------------------------------

DEMO_DISTRICTS = sorted({r["origin_district"] for r in generate()})
STATUSES = ("unknown", "not_victim", "possible", "actual")
MONTHS = [f"2025-{m:02d}" for m in range(1, 10)]


def _month_end(month: str) -> str:
    y, m = map(int, month.split("-"))
    return (date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)).isoformat()


@pytest.fixture
async def demo(db, province) -> Counter[tuple[str, ...]]:
    """The demo's 537 returnees, and the true counts the attacker wants (from the generator,
    not from the service): by district, by (district, status), (district, month),
    (district, month, sex)."""
    async with operator_unit(db, "test") as session:
        await load_returnees(session)
    truth: Counter[tuple[str, ...]] = Counter()
    for r in generate():
        d, s, m = r["origin_district"], r["trafficking_status"], r["return_date"][:7]
        truth.update([(d,), (d, s), (d, m), (d, m, r["sex"])])
    return truth


class Published:
    """Every figure a caller was shown, checked as it comes: each is suppressed or a multiple
    of the base at or above the threshold, and a cell shown twice (by any query) is the same."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, ...], int | None] = {}

    def add(self, cell: tuple[str, ...], value: int | None, truth: int) -> int | None:
        if truth == 0:
            assert value == 0, (cell, value)
        elif truth < BASE:
            assert value is None, (cell, value)
        else:
            assert value is not None and value % BASE == 0 and abs(value - truth) < BASE, (cell, value)
        assert self.seen.setdefault(cell, value) == value, ("the same cell, another value", cell)
        return value


def recovered(total: int | None, parts: list[int | None]) -> int | None:
    """What an attacker gets by subtraction (None when a term was not published)."""
    if total is None or any(p is None for p in parts):
        return None
    return total - sum(parts)  # type: ignore[arg-type]


async def test_a_total_minus_three_statuses_does_not_give_the_fourth(client, demo, province):
    """On main: four cells recovered exactly, among them a district's single 'actual' victim."""
    seen = Published()
    grouped = by((await stats(client, province, group_by="district,trafficking_status"))["rows"],
                 "district", "trafficking_status")
    tries = 0
    for d in DEMO_DISTRICTS:
        total = seen.add((d,), (await stats(client, province, district=d))["total"], demo[(d,)])
        parts = {}
        for s in STATUSES:
            alone = (await stats(client, province, district=d, trafficking_status=s))["total"]
            seen.add((d, s), alone, demo[(d, s)])
            if (d, s) in grouped:
                seen.add((d, s), grouped[(d, s)]["count"], demo[(d, s)])  # the same cell, the same value
            parts[s] = alone
        # the total minus the statuses shown is what is hidden: one cell, or the sum of several
        hidden = [s for s in STATUSES if parts[s] is None]
        truth = sum(demo[(d, s)] for s in hidden)
        if total is not None and 0 < truth < BASE:
            tries += 1
            guess = recovered(total, [parts[s] for s in STATUSES if s not in hidden])
            assert guess != truth and guess % BASE == 0, (d, hidden, guess)
    # the attack ran where it recovered the most on main: 61.05's single 'actual' victim, 61.02's
    # and 61.04's 'possible' and 'actual' together, ...
    assert tries >= 6
    assert demo[("61.05", "actual")] == 1


async def test_two_date_windows_do_not_give_a_suppressed_month(client, demo, province):
    seen = Published()
    tries = 0

    async def window(start: str, end: str) -> dict[str, int | None]:
        out = await stats(client, province, group_by="district", **{"from": start, "to": end})
        return {r["district"]: r["count"] for r in out["rows"]}

    for i, month in enumerate(MONTHS[1:], start=1):
        previous = MONTHS[i - 1]
        # cumulative windows, and overlapping windows that start a month earlier
        for start in ("2025-01-01", previous + "-01"):
            longer, shorter = await window(start, _month_end(month)), await window(start, _month_end(previous))
            for d in DEMO_DISTRICTS:
                truth = demo[(d, month)]
                if 0 < truth < BASE and d in longer:
                    guess = recovered(longer[d], [shorter.get(d, 0)])
                    if guess is not None:
                        tries += 1
                        assert guess != truth and guess % BASE == 0, (d, month, guess)
        alone = await window(month + "-01", _month_end(month))
        for d, value in alone.items():
            seen.add((d, month), value, demo[(d, month)])
    assert tries >= 10
    # the month cells of a district x month table are the same cells as the one-month windows
    table = (await stats(client, province, group_by="district,month", **{"from": "2025-02-01"}))["rows"]
    for row in table:
        seen.add((row["district"], row["month"]), row["count"], demo[(row["district"], row["month"])])


async def test_grouping_by_sex_or_not_does_not_give_the_other_sex(client, demo, province):
    seen = Published()
    tries = 0
    both = (await stats(client, province, group_by="district,month"))["rows"]
    split = by((await stats(client, province, group_by="district,month,sex"))["rows"], "district", "month", "sex")
    for row in both:
        d, m = row["district"], row["month"]
        seen.add((d, m), row["count"], demo[(d, m)])
        for sex, other in (("F", "M"), ("M", "F")):
            truth = demo[(d, m, sex)]
            shown = split.get((d, m, other), {"count": 0})["count"]
            if (d, m, other) in split:
                seen.add((d, m, other), shown, demo[(d, m, other)])
            if 0 < truth < BASE:
                guess = recovered(row["count"], [shown])
                if guess is not None:
                    tries += 1
                    assert guess != truth and guess % BASE == 0, (d, m, sex, guess)
    assert tries >= 5


async def test_every_difference_of_published_figures_is_a_multiple_of_the_base(client, demo, province, make_party):
    """Whatever the combination of queries: province-wide and one district, other groupings,
    redundant filters, another caller (Bengkayang's task force), the total of a table: every
    figure published is a multiple of 5 (so is every sum and difference of them), and the same
    records always give the same figure."""
    bengkayang = await make_party("GUGUS-TPPO-BENGKAYANG", "61.07", "stats:read", kind=AgencyKind.task_force)
    seen = Published()
    queries: list[tuple[Party, dict[str, Any]]] = [
        (province, {"group_by": "district"}),
        (province, {"group_by": "district", "from": "2025-01-01", "to": "2025-12-31"}),
        (province, {"group_by": "district,return_type"}),
        (province, {"group_by": "district,age_group"}),
        (province, {"group_by": "district", "return_type": "deported"}),
        (bengkayang, {"group_by": "district"}),
        (bengkayang, {}),
    ]
    for party, params in queries:
        out = await stats(client, party, **params)
        for row in out["rows"]:
            assert row["count"] is None or (row["count"] >= BASE and row["count"] % BASE == 0), row
            if set(params) <= {"group_by", "from", "to"} and params.get("group_by", "district") == "district":
                d = row.get("district", party.jurisdiction)
                seen.add((d,), row["count"], demo[(d,)])
        assert out["total"] is None or out["total"] % BASE == 0
    assert seen.seen["61.07",] in roundings(237)


# --- dimensions ----------------------------------------------------------------------------------


async def test_age_groups_at_the_boundaries(client, db, province):
    day = date(2025, 6, 15)
    # 17 on the return date (18th birthday the day after) vs 18 (birthday that very day)
    await insert_returnees(db, SOURCE, "61.07", 5, birth_date=date(2007, 6, 16), return_date=day)
    await insert_returnees(db, SOURCE, "61.07", 10, birth_date=date(2007, 6, 15), return_date=day)
    await insert_returnees(db, SOURCE, "61.07", 5, birth_date=date(1965, 6, 15), return_date=day)  # 60
    await insert_returnees(db, SOURCE, "61.07", 10, birth_date=date(1965, 12, 31), return_date=day)  # 59
    await insert_returnees(db, SOURCE, "61.07", 15, birth_date=None, return_date=day)
    await insert_returnees(db, SOURCE, "61.07", 5, birth_date=date(2000, 2, 29), return_date=date(2025, 2, 28))  # 24
    await insert_returnees(db, SOURCE, "61.07", 5, birth_date=date(2000, 2, 29), return_date=date(2025, 3, 1))  # 25
    out = await stats(client, province, group_by="age_group")
    counts = {r["age_group"]: r["count"] for r in out["rows"]}
    assert counts == {"0-17": 5, "18-24": 15, "25-34": 5, "45-59": 10, "60+": 5, "unknown": 15}


async def test_month_format(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 5, return_date=date(2025, 1, 31))
    await insert_returnees(db, SOURCE, "61.07", 5, return_date=date(2024, 12, 1))
    out = await stats(client, province, group_by="month")
    assert [r["month"] for r in out["rows"]] == ["2024-12", "2025-01"]


async def test_month_with_age_group(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 10, birth_date=date(2000, 1, 1), return_date=date(2025, 6, 1))
    await insert_returnees(db, SOURCE, "61.07", 5, birth_date=date(1990, 1, 1), return_date=date(2025, 7, 1))
    out = await stats(client, province, group_by="month,age_group,district")
    assert [(r["month"], r["age_group"], r["district"], r["count"]) for r in out["rows"]] == [
        ("2025-06", "25-34", "61.07", 10), ("2025-07", "35-44", "61.07", 5)]


# --- CSV, validation, scopes, audit ----------------------------------------------------------------


async def test_csv(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 20)
    await insert_returnees(db, SOURCE, "61.08", 10)
    await insert_returnees(db, SOURCE, "61.01", 3)
    r = await client.get("/v1/stats/returnees", params={"group_by": "district"},
                         headers=await province.headers(Accept="text/csv"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows == [["district", "count", "suppressed"], ["61.01", "", "true"], ["61.07", "20", "false"],
                    ["61.08", "10", "false"]]


async def test_unknown_group_by_is_422(client, province):
    r = await client.get("/v1/stats/returnees", params={"group_by": "district,full_name"},
                         headers=await province.headers())
    body = assert_problem(r, 422, "validation-error")
    assert body["errors"][0]["field"].endswith("group_by") and "full_name" in body["errors"][0]["message"]
    r = await client.get("/v1/stats/referrals", params={"group_by": "sex"}, headers=await province.headers())
    assert_problem(r, 422, "validation-error")
    # a long name is not echoed in full
    r = await client.get("/v1/stats/returnees", params={"group_by": "x" * 1_000}, headers=await province.headers())
    body = assert_problem(r, 422, "validation-error")
    assert len(r.content) < 1000
    # over-long or control characters are refused before the route sees them (400, as for any query)
    for odd in ("x" * 10_000, "district\x00"):
        r = await client.get("/v1/stats/returnees", params={"group_by": odd}, headers=await province.headers())
        body = assert_problem(r, 400, "bad-input")
        assert len(r.content) < 1000 and "\x00" not in r.text


@pytest.mark.parametrize("path", ["returnees", "referrals"])
@pytest.mark.parametrize("params", [
    {"threshold": str(2**64)}, {"threshold": str(2**70)}, {"threshold": "-1"}, {"threshold": "0"},
    {"threshold": "1000001"}, {"threshold": "1e3"},
    {"from": "0001-01-01"}, {"to": "9999-12-31"}, {"from": "10000-01-01"}, {"to": "2025-02-30"},
    {"from": "1899-12-31"}, {"to": "3000-01-01"},
])
async def test_parameters_out_of_range_are_422(client, province, path, params):
    r = await client.get(f"/v1/stats/{path}", params=params, headers=await province.headers())
    assert_problem(r, 422, "validation-error")


@pytest.mark.parametrize("path, params, status", [
    ("returnees", {"district": "61.07\x00"}, 400), ("returnees", {"district": "\x00"}, 400),
    ("returnees", {"district": "61.07' OR 1=1"}, 422), ("returnees", {"district": "6" * 100}, 422),
    ("referrals", {"to_agency": "POLRES\x00"}, 400), ("referrals", {"to_agency": "A" * 65}, 422),
])
async def test_malformed_filters_are_4xx(client, province, path, params, status):
    """Control characters are refused for every query (400, api/http/inputs.py); values that
    are text but not a district code or an agency code are the route's 422."""
    r = await client.get(f"/v1/stats/{path}", params=params, headers=await province.headers())
    assert_problem(r, status, "bad-input" if status == 400 else "validation-error")


MAX = 1_000_000


async def test_widest_accepted_range_is_answered(client, db, province):
    await insert_returnees(db, SOURCE, "61.07", 5)
    for path in ("returnees", "referrals"):
        out = await stats(client, province, path, threshold=MAX, **{"from": "1900-01-01", "to": "2999-12-31"})
        assert out["threshold"] == MAX


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
    assert detail["threshold"] == 5 and detail["rounding_base"] == 5
    assert subjects == 0


# --- referrals -------------------------------------------------------------------------------------

T0 = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


async def add_referrals(db, n: int, *, to: str, status: str = "requested", reason: str = "suspected_tppo_victim",
                        urgency: str = "normal", created: datetime = T0, due: timedelta = timedelta(days=7),
                        frm: str = SOURCE, to_region: str = "61.07", subject_region: str | None = "61.07",
                        from_region: str = "61") -> None:
    async with operator_unit(db, "test") as session:
        for _ in range(n):
            session.add(Referral(from_agency=frm, to_agency=to, sender_ref=uuid.uuid4().hex[:12], status=status,
                                 from_region=from_region, to_region=to_region, subject_region=subject_region,
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
    await add_referrals(db, 10, to="POLRES-BENGKAYANG")  # due 9 June, still requested
    await add_referrals(db, 5, to="POLRES-BENGKAYANG", status="completed")
    await add_referrals(db, 5, to="POLRES-BENGKAYANG", status="in-progress", urgency="high",
                        due=timedelta(hours=72), created=datetime(2025, 7, 1, 23, 30, tzinfo=UTC))  # due 4 July
    await add_referrals(db, 5, to="DINSOS-SAMBAS", to_region="61.01", subject_region="61.01",
                        reason="social_rehabilitation")
    ov = referral_world["oversight"]
    with clock.frozen(datetime(2025, 7, 2, tzinfo=UTC)):
        out = await stats(client, ov, "referrals", group_by="status")
    rows = by(out["rows"], "status")
    assert rows["requested"] == {"status": "requested", "count": 10, "overdue": 10, "suppressed": False}
    assert rows["completed"]["overdue"] == 0 and rows["in-progress"]["overdue"] == 0
    assert out["total"] == 20  # the Sambas referrals are not the Bengkayang task force's
    with clock.frozen(datetime(2025, 7, 10, tzinfo=UTC)):
        out = await stats(client, ov, "referrals", group_by=["month", "urgency"])
    rows = by(out["rows"], "month", "urgency")
    assert rows[("2025-06", "normal")]["count"] == 15 and rows[("2025-06", "normal")]["overdue"] == 10
    assert rows[("2025-07", "high")] == {"month": "2025-07", "urgency": "high", "count": 5, "overdue": 5,
                                         "suppressed": False}
    # the sender sees all it sent, by receiver and reason
    with clock.frozen(datetime(2025, 7, 10, tzinfo=UTC)):
        sent = await stats(client, referral_world["bp3mi"], "referrals", group_by="to_agency,reason")
    assert by(sent["rows"], "to_agency", "reason")[("DINSOS-SAMBAS", "social_rehabilitation")]["count"] == 5
    assert sent["total"] == 25
    # filters
    with clock.frozen(datetime(2025, 7, 10, tzinfo=UTC)):
        june = await stats(client, ov, "referrals", **{"from": "2025-06-01", "to": "2025-06-30"}, status="requested")
    assert june["rows"] == [{"count": 10, "overdue": 10, "suppressed": False}]


async def test_referral_suppression_hides_overdue_too(client, db, referral_world):
    await add_referrals(db, 2, to="POLRES-BENGKAYANG", reason="legal_aid")
    await add_referrals(db, 9, to="POLRES-BENGKAYANG")
    await add_referrals(db, 20, to="POLRES-BENGKAYANG", reason="reintegration")
    await add_referrals(db, 3, to="POLRES-BENGKAYANG", reason="reintegration", status="completed")
    with clock.frozen(datetime(2025, 7, 1, tzinfo=UTC)):
        out = await stats(client, referral_world["oversight"], "referrals", group_by="reason")
    rows = by(out["rows"], "reason")
    assert rows["legal_aid"] == {"reason": "legal_aid", "count": None, "overdue": None, "suppressed": True}
    # all 9 overdue: the same records, the same cell key, the same rounded figure
    nine = rows["suspected_tppo_victim"]
    assert nine["count"] in roundings(9) and nine["overdue"] == nine["count"]
    # 23 referrals, 20 of them overdue: each rounded on its own, overdue never above count
    assert rows["reintegration"]["count"] in roundings(23) and rows["reintegration"]["overdue"] == 20
    # a district task force elsewhere counts none of them
    other = await stats(client, referral_world["sambas"], "referrals", group_by="reason")
    assert other["rows"] == [] and other["total"] == 0


async def test_referral_overdue_under_the_threshold_is_hidden(client, db, referral_world):
    await add_referrals(db, 3, to="POLRES-BENGKAYANG")
    await add_referrals(db, 10, to="POLRES-BENGKAYANG", due=timedelta(days=60))
    with clock.frozen(datetime(2025, 7, 1, tzinfo=UTC)):
        out = await stats(client, referral_world["oversight"], "referrals")
    # 3 of the 13 are overdue: the count is shown (rounded), the 3 is not
    assert out["rows"] == [{"count": out["total"], "overdue": None, "suppressed": False}]
    assert out["total"] in roundings(13)


async def test_referral_differences_do_not_give_a_small_status(client, db, referral_world):
    await add_referrals(db, 12, to="POLRES-BENGKAYANG")
    await add_referrals(db, 7, to="POLRES-BENGKAYANG", status="completed")
    await add_referrals(db, 2, to="POLRES-BENGKAYANG", status="rejected")
    ov = referral_world["oversight"]
    everything = (await stats(client, ov, "referrals"))["total"]
    parts = [(await stats(client, ov, "referrals", status=s))["total"] for s in ("requested", "completed")]
    table = by((await stats(client, ov, "referrals", group_by="status"))["rows"], "status")
    assert table["rejected"]["suppressed"]
    assert [table["requested"]["count"], table["completed"]["count"]] == parts
    guess = recovered(everything, parts)
    assert guess is not None and guess != 2 and guess % BASE == 0


async def test_referral_csv(client, db, referral_world):
    await add_referrals(db, 5, to="POLRES-BENGKAYANG")
    with clock.frozen(datetime(2025, 6, 3, tzinfo=UTC)):
        r = await client.get("/v1/stats/referrals", params={"group_by": "to_agency"},
                             headers=await referral_world["oversight"].headers(Accept="text/csv"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(r.text))) == [["to_agency", "count", "overdue", "suppressed"],
                                                     ["POLRES-BENGKAYANG", "5", "0", "false"]]


async def test_a_province_agency_counts_the_referrals_of_its_province(client, db, referral_world, province):
    """DP3A Provinsi (not an oversight kind, party to no referral) reports on its province: it
    counts what the district's task force counts, and the other districts' referrals too."""
    await add_referrals(db, 45, to="POLRES-BENGKAYANG")
    await add_referrals(db, 5, to="DINSOS-SAMBAS", to_region="61.01", subject_region="61.01")
    with clock.frozen(datetime(2025, 7, 2, tzinfo=UTC)):
        task_force = await stats(client, referral_world["oversight"], "referrals")
        dp3a = await stats(client, province, "referrals", group_by="to_agency")
    assert task_force["total"] == 45
    assert dp3a["total"] == 50
    assert by(dp3a["rows"], "to_agency")["POLRES-BENGKAYANG"]["count"] == 45
    # a district agency of another district still counts only what touches its own
    with clock.frozen(datetime(2025, 7, 2, tzinfo=UTC)):
        assert (await stats(client, referral_world["sambas"], "referrals"))["total"] == 5


# --- referrals by district ---------------------------------------------------------------------

NOW = datetime(2025, 7, 2, tzinfo=UTC)  # the referrals of T0 (due 9 June) still open are overdue


async def district_world(db) -> None:
    """Referrals about people of Bengkayang (61.07, some recorded by kecamatan), of Sambas (61.01),
    of Balikpapan (64.71, outside the province) and of nowhere known (no region, or the whole
    province), in open and closed states, overdue or not."""
    await add_referrals(db, 10, to="POLRES-BENGKAYANG")  # 61.07, open, overdue
    await add_referrals(db, 5, to="POLRES-BENGKAYANG", subject_region="61.07.07", status="completed")
    await add_referrals(db, 4, to="POLRES-BENGKAYANG", subject_region="61.07.07.2001", status="in-progress",
                        due=timedelta(days=60))  # open, not overdue
    await add_referrals(db, 7, to="DINSOS-SAMBAS", to_region="61.01", subject_region="61.01.03",
                        status="in-progress")
    await add_referrals(db, 3, to="DINSOS-SAMBAS", to_region="61.01", subject_region="61.01", status="rejected")
    await add_referrals(db, 6, to="POLRES-BENGKAYANG", subject_region=None)
    await add_referrals(db, 5, to="POLRES-BENGKAYANG", subject_region="61", status="cancelled")
    await add_referrals(db, 5, to="POLRES-BENGKAYANG", subject_region="64.71", status="on-hold")
    # sent from Bengkayang (the police) to Sambas, about a person of Sambas
    await add_referrals(db, 5, frm="POLRES-BENGKAYANG", from_region="61.07", to="DINSOS-SAMBAS", to_region="61.01",
                        subject_region="61.01.03")


def _district(region: str | None) -> str | None:
    return ".".join(region.split(".")[:2]) if region and "." in region else None


async def direct_by_district(db, *, counted, open_: bool | None = None) -> dict[str | None, dict[str, Any]]:
    """The published rows of ``group_by=district`` worked out from the table itself: each
    district's referrals counted here, their keys summed, rounded and suppressed by the rule."""
    secret = service.stats_secret(db.settings.index_key_bytes)
    async with db.sessionmaker() as s:
        refs = (await s.execute(sa.select(Referral.id, Referral.subject_region, Referral.status, Referral.due_at,
                                          Referral.from_region, Referral.to_region, Referral.from_agency,
                                          Referral.to_agency))).all()
    cells: dict[str | None, list[int]] = {}
    for r in refs:
        if not counted(r):
            continue
        is_open = r.status in {"requested", "received", "accepted", "in-progress", "on-hold"}
        if open_ is not None and is_open != open_:
            continue
        key = record_key(secret, f"referral|{r.id.hex}")
        overdue = is_open and r.due_at.replace(tzinfo=UTC) < NOW
        cell = cells.setdefault(_district(r.subject_region), [0, 0, 0, 0])
        cell[0] += 1
        cell[1] += key
        cell[2] += overdue
        cell[3] += key if overdue else 0
    out = {}
    for d, (n, k, o, ok) in cells.items():
        count = publish(n, k % KEY_SPACE, BASE, BASE)
        late = publish(o, ok % KEY_SPACE, BASE, BASE)
        out[d] = {"district": d, "count": count, "overdue": None if count is None or late is None else min(late, count),
                  "suppressed": count is None}
    return out


def _touches(jurisdiction: str, agency: str):
    """The referrals an agency's statistics count (api.referrals.repository.counted), in Python."""
    def inside(code: str | None) -> bool:
        return code is not None and (code == jurisdiction or code.startswith(jurisdiction + "."))

    def counted(r: Any) -> bool:
        return (agency in (r.from_agency, r.to_agency) or inside(r.from_region) or inside(r.to_region)
                or inside(r.subject_region))

    return counted


async def test_referrals_by_district_equal_a_direct_count(client, db, referral_world, province):
    await district_world(db)
    with clock.frozen(NOW):
        out = await stats(client, province, "referrals", group_by="district")
    assert out["group_by"] == ["district"]
    expected = await direct_by_district(db, counted=_touches("61", "DP3A-KALBAR"))
    assert by(out["rows"], "district") == expected
    # the figures as arranged: a kecamatan or desa is its district's; no region or the whole province is null
    assert set(expected) == {"61.07", "61.01", "64.71", None}
    assert expected["61.07"]["count"] in roundings(19) and expected["61.07"]["overdue"] == 10
    assert expected["61.01"]["count"] == 15 and expected["61.01"]["overdue"] in roundings(12)
    assert expected["64.71"] == {"district": "64.71", "count": 5, "overdue": 5, "suppressed": False}
    assert expected[None]["count"] in roundings(11)
    assert out["total"] in roundings(50)


async def test_open_and_overdue_referrals_per_district(client, db, referral_world, province):
    await district_world(db)
    with clock.frozen(NOW):
        open_ = await stats(client, province, "referrals", group_by="district", open="true")
        closed = await stats(client, province, "referrals", group_by="district", open="false")
        bky = await stats(client, province, "referrals", district="61.07", open="true")
        both = await stats(client, province, "referrals", group_by="district,status", district="61.01")
    counted = _touches("61", "DP3A-KALBAR")
    assert by(open_["rows"], "district") == await direct_by_district(db, counted=counted, open_=True)
    assert by(closed["rows"], "district") == await direct_by_district(db, counted=counted, open_=False)
    rows = by(open_["rows"], "district")
    assert rows["61.07"]["count"] in roundings(14) and rows["61.07"]["overdue"] == 10
    assert rows["64.71"] == {"district": "64.71", "count": 5, "overdue": 5, "suppressed": False}
    # a closed referral is never overdue (the 3 rejected of Sambas: suppressed, and their overdue with them)
    assert [(r["district"], r["overdue"]) for r in closed["rows"]] == [("61.01", None), ("61.07", 0), (None, 0)]
    # the district filter selects the dimension's records: the same cell, the same figure
    assert bky["rows"] == [{key: v for key, v in rows["61.07"].items() if key != "district"}]
    assert {r["district"] for r in both["rows"]} == {"61.01"}
    assert by(both["rows"], "status")["rejected"]["suppressed"]


async def test_a_district_agency_counts_by_district_only_what_touches_its_district(client, db, referral_world):
    await district_world(db)
    sambas, bengkayang = referral_world["sambas"], referral_world["oversight"]
    with clock.frozen(NOW):
        own = await stats(client, sambas, "referrals", group_by="district")
        other = await stats(client, sambas, "referrals", group_by="district", district="61.07")
        bky = await stats(client, bengkayang, "referrals", group_by="district")
    assert [r["district"] for r in own["rows"]] == ["61.01"]
    assert by(own["rows"], "district") == await direct_by_district(db, counted=_touches("61.01", "GUGUS-TPPO-SAMBAS"))
    assert other["rows"] == [] and other["total"] == 0  # another district's figures: none
    # Bengkayang's task force: its district's people, and the referrals sent from or addressed to
    # Bengkayang about people of elsewhere (the police's 5 about Sambas people), nothing else of Sambas
    expected = await direct_by_district(db, counted=_touches("61.07", "GUGUS-TPPO-BENGKAYANG"))
    assert by(bky["rows"], "district") == expected
    assert expected["61.01"] == {"district": "61.01", "count": 5, "overdue": 5, "suppressed": False}
    # the same records, whoever asks: the same published figure
    with clock.frozen(NOW):
        province = await stats(client, referral_world["bp3mi"], "referrals", group_by="district")
    assert by(province["rows"], "district")["61.07"] == by(bky["rows"], "district")["61.07"]


async def test_referrals_by_district_as_csv(client, db, referral_world):
    await add_referrals(db, 5, to="POLRES-BENGKAYANG", subject_region="61.07.07")
    await add_referrals(db, 5, to="POLRES-BENGKAYANG", subject_region=None, status="completed")
    with clock.frozen(NOW):
        r = await client.get("/v1/stats/referrals", params={"group_by": "district", "open": "true"},
                             headers=await referral_world["oversight"].headers(Accept="text/csv"))
        everything = await client.get("/v1/stats/referrals", params={"group_by": "district"},
                                      headers=await referral_world["oversight"].headers(Accept="text/csv"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(r.text))) == [["district", "count", "overdue", "suppressed"],
                                                     ["61.07", "5", "5", "false"]]
    assert list(csv.reader(io.StringIO(everything.text)))[1:] == [["61.07", "5", "5", "false"],
                                                                  ["", "5", "0", "false"]]


@pytest.mark.parametrize("params", [{"district": "61.99"}, {"district": "61.07.07"}, {"district": "61"},
                                    {"open": "perhaps"}, {"group_by": "district,origin_district"}])
async def test_bad_district_or_open_is_422_and_counts_nothing(client, db, province, params):
    r = await client.get("/v1/stats/referrals", params=params, headers=await province.headers())
    body = assert_problem(r, 422, "validation-error")
    assert "rows" not in body
    async with db.sessionmaker() as s:
        outcomes = (await s.execute(sa.select(AuditEvent.outcome).where(
            AuditEvent.action == "stats.referrals"))).scalars().all()
    assert outcomes and "allowed" not in outcomes  # the refusal is recorded; no table was made


async def test_the_district_and_open_filters_are_audited(client, db, province):
    await stats(client, province, "referrals", group_by="district", district="61.07", open="true")
    async with db.sessionmaker() as s:
        body = (await s.execute(sa.select(AuditEvent.body).where(AuditEvent.action == "stats.referrals"))).scalar_one()
    detail = orjson.loads(body)["detail"]
    assert detail["group_by"] == ["district"]
    assert detail["filters"] == {"district": "61.07", "open": "true"}
