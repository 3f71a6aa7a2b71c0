"""Every list pages the same way: sealed cursors, one page type, one rule for times and limits.

For each list (agencies, audit, events, notices, referrals in each sort order, returnees):
paging through it returns every item exactly once, in the order of the whole list; a cursor
says nothing readable; anything but a cursor the list itself made (random bytes, a cursor of
another list or sort order, one edited byte, the old base64 JSON cursors) is a 400 problem,
never a 500. Every time and day query parameter takes one rule: RFC 3339 with an offset, within
the calendar the service accepts, else a 422 problem naming the parameter.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest

from api.core import clock, pagination
from api.core.errors import BadRequest
from api.core.settings import Settings
from models import AgencyKind
from tests.conftest import Party, assert_problem
from tests.returnee_rows import insert_returnees

T0 = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)
HOLDS = "use next_cursor from a previous reply"


@dataclass
class Listing:
    """One list as a caller pages through it."""

    name: str
    path: str
    party: Party
    params: dict[str, Any] = field(default_factory=dict)
    cursor_param: str = "cursor"
    id_key: str = "id"
    headers: dict[str, str] = field(default_factory=dict)  # one token per list and test (tokens are rate limited)

    async def get(self, client: httpx.AsyncClient, **params: Any) -> httpx.Response:
        if not self.headers:
            self.headers.update(await self.party.headers())
        return await client.get(self.path, params={**self.params, **params}, headers=self.headers)

    async def page(self, client: httpx.AsyncClient, cursor: str | None = None, **params: Any) -> dict[str, Any]:
        r = await self.get(client, **params, **({self.cursor_param: cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        return r.json()


@dataclass
class Lists:
    all: list[Listing]
    province: Party  # BP3MI-KALBAR: returnees, notices, referrals, events, stats

    def __getitem__(self, name: str) -> Listing:
        return next(entry for entry in self.all if entry.name == name)


SORTS = ("due_at", "-due_at", "created_at", "-created_at", "updated_at", "-updated_at")


@pytest.fixture
async def lists(client, make_party, db) -> Lists:
    """Seven or more items in each list, with ties in every time the lists are ordered by (so
    the id has to break them)."""
    admin = await make_party("OPERATOR", "61", ["admin"], kind=AgencyKind.operator)
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)
    bp3mi = await make_party(
        "BP3MI-KALBAR", "61",
        "returnees:read notices:write notices:read events:read referrals:write referrals:read stats:read",
        kind=AgencyKind.migrant_protection,
    )
    await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond", kind=AgencyKind.police)
    for code in ("DINSOS-BENGKAYANG", "DINSOS-SAMBAS", "DP3A-SAMBAS", "DP3A-BENGKAYANG"):
        await make_party(code, "61.07" if code.endswith("BENGKAYANG") else "61.01", ["notices:read"])

    with clock.frozen(T0):  # equal updated_at: the id orders them
        ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 4, nik_enc=None, passport_enc=None)
    with clock.frozen(T0 + timedelta(hours=1)):
        ids += await insert_returnees(db, "BP3MI-KALBAR", "61.07", 3, nik_enc=None, passport_enc=None)
    for i, rid in enumerate(ids):
        with clock.frozen(T0 + timedelta(hours=i // 3)):  # three notices a moment
            r = await client.post("/v1/notices", headers=await bp3mi.headers(), json={
                "district": "61.07", "returnee_ids": [str(rid)], "summary": f"Deportees {i}",
                "arrival_date": "2025-06-01", "entry_point": "PLBN Entikong"})
            assert r.status_code == 201, r.text
    for i in range(7):
        with clock.frozen(T0 + timedelta(hours=i // 3)):  # ties in created_at, updated_at and due_at
            r = await client.post("/v1/referrals", headers=await bp3mi.headers(), json={
                "to_agency": "POLRES-BENGKAYANG", "returnee_id": str(ids[i]), "reason": "suspected_tppo_victim",
                "legal_basis": "UU-21-2007:51", "urgency": "high" if i % 2 else "normal",
                "consent": {"given": True, "given_by": "the subject", "given_at": "2025-05-20T03:00:00Z",
                            "method": "written"}})
            assert r.status_code == 201, r.text

    return Lists(
        all=[
            Listing("agencies", "/v1/agencies", admin, id_key="code"),
            # the BP3MI's own entries: reading the log adds entries of the auditor's, not of these
            Listing("audit", "/v1/audit", auditor, {"actor": bp3mi.client_id}, id_key="seq"),
            Listing("events", "/v1/events", bp3mi, cursor_param="after"),
            Listing("notices", "/v1/notices", bp3mi),
            *(Listing(f"referrals {s}", "/v1/referrals", bp3mi, {"sort": s}) for s in SORTS),
            Listing("returnees", "/v1/returnees", bp3mi),
        ],
        province=bp3mi,
    )


async def a_cursor(client: httpx.AsyncClient, listing: Listing) -> str:
    """A cursor ``listing`` made (the second page's)."""
    cursor = (await listing.page(client, limit=1))["next_cursor"]
    assert cursor
    return cursor


def urlsafe(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def assert_bad_cursor(r: httpx.Response) -> None:
    body = assert_problem(r, 400, "/problems/bad-request")
    assert HOLDS in body["detail"]


# --- paging ----------------------------------------------------------------------------------


async def test_paging_returns_every_item_once_in_order(client, lists):
    for listing in lists.all:
        whole = await listing.page(client, limit=500)
        everything = [item[listing.id_key] for item in whole["items"]]
        assert len(everything) >= 7, listing.name
        if listing.name != "events":
            assert whole["next_cursor"] is None, listing.name
        for size in (1, 2, 3):
            seen: list[Any] = []
            cursor = None
            for _ in range(len(everything) + 2):
                page = await listing.page(client, cursor, limit=size)
                assert len(page["items"]) <= size
                seen += [item[listing.id_key] for item in page["items"]]
                if listing.name == "events" and not page["items"]:
                    assert page["next_cursor"] == cursor  # the feed's end: poll on with the same cursor
                    break
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == everything, (listing.name, size)


async def test_the_orders_are_what_each_list_promises(client, lists):
    async def items(listing: Listing) -> list[dict[str, Any]]:
        return (await listing.page(client, limit=500))["items"]

    codes = [a["code"] for a in await items(lists["agencies"])]
    assert codes == sorted(codes)
    seqs = [e["seq"] for e in await items(lists["audit"])]
    assert seqs == sorted(seqs, reverse=True)
    notices = await items(lists["notices"])
    assert [(n["created_at"], n["id"]) for n in notices] == sorted(
        ((n["created_at"], n["id"]) for n in notices), reverse=True)
    for sort in SORTS:
        got = await items(lists[f"referrals {sort}"])
        name, desc = sort.lstrip("-"), sort.startswith("-")
        keys = [(datetime.fromisoformat(r[name]), uuid.UUID(r["id"])) for r in got]
        assert keys == sorted(keys, reverse=desc), sort
    returnees = await items(lists["returnees"])
    keys = [(datetime.fromisoformat(r["updated_at"]), uuid.UUID(r["id"])) for r in returnees]
    assert keys == sorted(keys) and len({k[0] for k in keys}) == 2  # ties, broken by the id


async def test_a_cursor_says_nothing_readable(client, lists):
    for listing in lists.all:
        first = await listing.page(client, limit=1)
        cursor = first["next_cursor"]
        raw = unb64(cursor)
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)
        last = first["items"][-1]
        shown = [str(last[listing.id_key])]
        if listing.name == "returnees":
            shown.append(last["updated_at"][:19])
        for value in shown:
            if len(value) >= 6:  # a short number could occur in any bytes by chance
                for form in (value, value.replace("-", "")):
                    assert form.encode() not in raw and form not in cursor, (listing.name, value)
        # sealed afresh each time: two cursors of the same position are not even equal
        assert (await listing.page(client, limit=1))["next_cursor"] != cursor, listing.name


# --- crafted cursors -------------------------------------------------------------------------


def old_cursors() -> list[str]:
    """The cursors every list took before they were sealed, and the crafted ones of the
    penetration test (each was a 500 or, worse, honoured)."""
    some_id = str(uuid.uuid4())
    docs: list[Any] = [
        {"seq": "abc"}, {"seq": 5}, {"pos": True}, {"pos": 3}, {"pos": -1}, {"code": "A"}, {"code": None},
        {"u": "2025-06-01T03:00:00", "i": some_id}, {"u": "2025-06-01T03:00:00+00:00", "i": some_id},
        {"t": "2025-06-01T03:00:00", "id": some_id}, {"t": "0001-01-01T00:00:00+14:00", "id": some_id},
        {"s": "due_at", "v": "2025-06-01T03:00:00", "id": some_id},
        {"s": "due_at", "v": "9999-12-31T23:59:59-12:00", "id": some_id},
        [], [1, 2], "x", 7, None,
    ]
    return [urlsafe(orjson.dumps(d)) for d in docs]


async def test_crafted_cursors_are_a_400_problem(client, lists):
    own = {listing.name: await a_cursor(client, listing) for listing in lists.all}
    for listing in lists.all:
        assert (await listing.get(client, **{listing.cursor_param: own[listing.name]})).status_code == 200
        crafted = [urlsafe(os.urandom(n)) for n in (1, 12, 28, 44, 90)]
        crafted += old_cursors()
        crafted += [c for name, c in own.items() if name != listing.name]  # another list's, another order's
        mine = own[listing.name]
        for at in (0, len(mine) // 2, len(mine) - 2):  # one character changed: another byte
            crafted.append(mine[:at] + ("A" if mine[at] != "A" else "B") + mine[at + 1:])
        crafted += [mine[:-4], mine + "AAAA", mine + "=", "!!" + mine, "A" * 4000, "%%%"]
        for cursor in crafted:
            r = await listing.get(client, **{listing.cursor_param: cursor})
            assert r.status_code == 400, (listing.name, cursor, r.text)
            assert_bad_cursor(r)
        # a control character, or more than any query value may hold, is refused before the
        # route opens the cursor (api/http/inputs.py): still a 400 problem
        for cursor in (mine + "\x00", "A" * 5000):
            r = await listing.get(client, **{listing.cursor_param: cursor})
            assert_problem(r, 400, "bad-input")


def test_a_cursor_opens_only_with_its_list_and_key():
    dev = Settings(mode="development")
    other = Settings(mode="development", data_key=urlsafe(os.urandom(32)))
    keyset = pagination.Keyset("things", (datetime, uuid.UUID))
    position = (T0, uuid.uuid4())
    cursor = keyset.seal(dev, position)
    assert keyset.open(dev, cursor) == position
    assert keyset.open(dev, None) is None and keyset.seal(dev, None) is None
    for opener, settings in ((keyset, other), (pagination.Keyset("other things", (datetime, uuid.UUID)), dev)):
        with pytest.raises(BadRequest):
            opener.open(settings, cursor)


@pytest.mark.parametrize("types, plain", [
    ((int,), ["abc"]), ((int,), [True]), ((int,), [2**70]), ((int,), [1.5]), ((int,), [1, 2]), ((int,), []),
    ((int,), {"seq": 1}), ((str,), [None]), ((str,), [3]),
    ((datetime, uuid.UUID), ["2025-06-01T03:00:00", str(uuid.uuid4())]),  # naive
    ((datetime, uuid.UUID), ["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]),  # overflows into year 0
    ((datetime, uuid.UUID), ["9999-12-31T23:59:59-12:00", str(uuid.uuid4())]),  # overflows into year 10000
    ((datetime, uuid.UUID), ["yesterday", str(uuid.uuid4())]), ((datetime, uuid.UUID), [str(T0), "not-an-id"]),
    ((datetime, uuid.UUID), [str(T0), 7]),
])
def test_a_sealed_cursor_of_the_wrong_types_is_a_400(types, plain):
    """Even a cursor that opens (sealed with the right key and list) is refused when its
    values are not of the list's types: a key rotation, or a change of a keyset, is a 400."""
    settings = Settings(mode="development")
    keyset = pagination.Keyset("things", types)
    nonce = os.urandom(12)
    aead = pagination._aead(settings.data_key_bytes)
    cursor = urlsafe(nonce + aead.encrypt(nonce, json.dumps(plain).encode(), b"sinergi/cursor/v1/things"))
    with pytest.raises(BadRequest) as caught:
        keyset.open(settings, cursor)
    assert HOLDS in caught.value.detail


# --- limits, times and days ------------------------------------------------------------------


async def test_every_list_takes_the_same_limit(client, lists):
    for listing in lists.all:
        page = await listing.page(client)
        assert 7 <= len(page["items"]) <= pagination.DEFAULT_LIMIT
        for bad in ("0", "501", "-1", "x", str(2**64)):
            body = assert_problem(await listing.get(client, limit=bad), 422, "validation-error")
            assert [e["field"] for e in body["errors"]] == ["query.limit"], listing.name
        assert (await listing.get(client, limit=500)).status_code == 200


NAIVE = "2026-01-01T00:00:00"
OUT_OF_RANGE_TIMES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1899-12-31T23:59:59Z",
                      "3000-01-01T00:00:00Z")
OUT_OF_RANGE_DAYS = ("0001-01-01", "9999-12-31", "1899-12-31", "3000-01-01")


async def test_times_need_an_offset_and_a_calendar_date(client, lists):
    for listing, name in (
        (lists["audit"], "from"), (lists["audit"], "to"),
        (lists["returnees"], "updated_since"), (lists["referrals due_at"], "updated_since"),
    ):
        for value in (NAIVE, *OUT_OF_RANGE_TIMES, "2026-13-01T00:00:00Z", "soon"):
            body = assert_problem(await listing.get(client, **{name: value}), 422, "validation-error")
            assert [e["field"] for e in body["errors"]] == [f"query.{name}"], (listing.name, name, value)
        for value in ("2026-01-01T07:00:00+07:00", "2026-01-01T00:00:00Z", "1900-01-01T00:00:00Z",
                      "2999-12-31T23:59:59Z", "2999-12-31T23:59:59+07:00"):
            r = await listing.get(client, **{name: value})
            assert r.status_code == 200, (listing.name, name, value, r.text)


async def test_days_are_within_the_calendar(client, lists):
    stats = [Listing("stats", f"/v1/stats/{p}", lists.province) for p in ("returnees", "referrals")]
    for listing, name in [(lists["returnees"], "returned_from"), (lists["returnees"], "returned_to"),
                          *((s, n) for s in stats for n in ("from", "to"))]:
        for value in (*OUT_OF_RANGE_DAYS, "2025-02-30", "10000-01-01", "today"):
            body = assert_problem(await listing.get(client, **{name: value}), 422, "validation-error")
            assert [e["field"] for e in body["errors"]] == [f"query.{name}"], (listing.path, name, value)
        for value in ("1900-01-01", "2025-06-01", "2999-12-31"):
            assert (await listing.get(client, **{name: value})).status_code == 200, (listing.path, name, value)


async def test_a_time_with_an_offset_means_that_instant(client, lists):
    """``updated_since`` in Pontianak time selects what changed at or after that instant, on
    SQLite as on PostgreSQL (the times are compared in UTC)."""
    wib = timezone(timedelta(hours=7))
    at = T0.astimezone(wib).isoformat()  # 2025-06-01T10:00:00+07:00, the instant T0
    just_after = (T0 + timedelta(seconds=1)).astimezone(wib).isoformat()
    returnees = lists["returnees"]
    assert len((await returnees.page(client, updated_since=at))["items"]) == 7
    assert len((await returnees.page(client, updated_since=just_after))["items"]) == 3  # the T0 + 1h ones
    referrals = lists["referrals created_at"]
    assert len((await referrals.page(client, updated_since=at))["items"]) == 7
    assert len((await referrals.page(client, updated_since=just_after))["items"]) == 4
