"""The audit chain: every call leaves an entry, and any rewrite of the log is detected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from api.core.db import sync_url
from models import AgencyKind
from tests.conftest import assert_problem


@contextmanager
def as_attacker(database_url: str) -> Iterator[sa.Connection]:
    """A connection with the rights of a database superuser: the append-only triggers are
    out of the way (on SQLite they are dropped from this test's own copy)."""
    eng = sa.create_engine(sync_url(database_url))
    try:
        with eng.begin() as c:
            if c.dialect.name == "postgresql":
                c.execute(sa.text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
            else:
                c.execute(sa.text("DROP TRIGGER IF EXISTS audit_event_no_update"))
                c.execute(sa.text("DROP TRIGGER IF EXISTS audit_event_no_delete"))
            yield c
            if c.dialect.name == "postgresql":
                c.execute(sa.text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
    finally:
        eng.dispose()


def entries(database_url: str) -> list[dict]:
    eng = sa.create_engine(sync_url(database_url))
    with eng.connect() as c:
        rows = [dict(r._mapping) for r in c.execute(sa.text(
            "SELECT seq, action, outcome, client_id, body FROM audit_event WHERE chain = '61' ORDER BY seq"))]
    eng.dispose()
    return rows


@pytest.fixture
async def auditor(make_party):
    return await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)


@pytest.fixture
async def busy_chain(client, auditor):
    """Some history: tokens, reads, a denied call. Returns the auditor's headers."""
    headers = await auditor.headers()
    for _ in range(3):
        assert (await client.get("/v1/audit", headers=headers)).status_code == 200
    await client.get("/v1/agencies", headers=headers)  # 403
    r = await client.get("/v1/audit/verify", headers=headers)
    assert r.json()["ok"] is True, r.json()
    return headers


async def verify(client, headers) -> dict:
    r = await client.get("/v1/audit/verify", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_an_untouched_chain_verifies(client, busy_chain, database_url):
    body = await verify(client, busy_chain)
    rows = entries(database_url)
    assert body["ok"] is True and body["first_bad_seq"] is None
    # The head is read first, so the reply covers everything before this very call.
    assert body["checked"] == body["head"]["seq"] == len(rows) - 1
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))


async def test_an_edited_body_is_detected(client, busy_chain, database_url):
    with as_attacker(database_url) as c:
        c.execute(sa.text("UPDATE audit_event SET body = replace(body, '\"allowed\"', '\"denied\"') "
                          "WHERE chain = '61' AND seq = 3"))
    body = await verify(client, busy_chain)
    assert body["ok"] is False and body["first_bad_seq"] == 3


async def test_an_edited_indexed_column_is_detected(client, busy_chain, database_url):
    # The body still hashes right; the column that searches use says something else.
    with as_attacker(database_url) as c:
        c.execute(sa.text("UPDATE audit_event SET action = 'healthz' WHERE chain = '61' AND seq = 4"))
    body = await verify(client, busy_chain)
    assert body["ok"] is False and body["first_bad_seq"] == 4


async def test_an_edited_client_column_is_detected(client, busy_chain, database_url):
    with as_attacker(database_url) as c:
        c.execute(sa.text("UPDATE audit_event SET client_id = 'someone-else' WHERE chain = '61' AND seq = 2"))
    body = await verify(client, busy_chain)
    assert body["ok"] is False and body["first_bad_seq"] == 2


async def test_a_deleted_middle_entry_is_detected(client, busy_chain, database_url):
    with as_attacker(database_url) as c:
        c.execute(sa.text("DELETE FROM audit_event WHERE chain = '61' AND seq = 3"))
    body = await verify(client, busy_chain)
    assert body["ok"] is False and body["first_bad_seq"] == 3


async def test_a_deleted_last_entry_is_detected(client, busy_chain, database_url):
    last = entries(database_url)[-1]["seq"]
    with as_attacker(database_url) as c:
        c.execute(sa.text("DELETE FROM audit_event WHERE chain = '61' AND seq = :s"), {"s": last})
    body = await verify(client, busy_chain)
    assert body["ok"] is False and body["first_bad_seq"] == last


async def test_reordered_entries_are_detected(client, busy_chain, database_url):
    with as_attacker(database_url) as c:
        c.execute(sa.text("UPDATE audit_event SET seq = -1 WHERE chain = '61' AND seq = 2"))
        c.execute(sa.text("UPDATE audit_event SET seq = 2 WHERE chain = '61' AND seq = 4"))
        c.execute(sa.text("UPDATE audit_event SET seq = 4 WHERE chain = '61' AND seq = -1"))
    body = await verify(client, busy_chain)
    assert body["ok"] is False and body["first_bad_seq"] == 2


async def test_the_table_refuses_update_and_delete(client, busy_chain, database_url):
    eng = sa.create_engine(sync_url(database_url))
    try:
        for stmt in ("UPDATE audit_event SET action = 'x' WHERE seq = 1", "DELETE FROM audit_event WHERE seq = 1"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                with eng.begin() as c:
                    c.execute(sa.text(stmt))
    finally:
        eng.dispose()
    assert (await verify(client, busy_chain))["ok"] is True


def test_audit_verify_command(sinergi, database_url):
    assert sinergi("agency", "add", "POLRES-BENGKAYANG", "--name", "Polres Bengkayang",
                   "--jurisdiction", "61.07").exit_code == 0
    for _ in range(3):
        assert sinergi("client", "create", "--agency", "POLRES-BENGKAYANG", "--scopes", "referrals:read").exit_code == 0
    ok = sinergi("audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.output and "4 entries" in ok.output
    with as_attacker(database_url) as c:
        c.execute(sa.text("UPDATE audit_event SET body = replace(body, 'client.create', 'client.delete') "
                          "WHERE seq = 3"))
    broken = sinergi("audit", "verify")
    assert broken.exit_code == 1
    assert "entry 3" in broken.output


# --- reading the log -------------------------------------------------------------------------


async def test_filters_and_pagination(client, auditor, make_party, database_url):
    admin = await make_party("OPERATOR", "61", ["admin"], kind=AgencyKind.operator)
    admin_h = await admin.headers()
    for code in ("DINSOS-BENGKAYANG", "POLRES-BENGKAYANG"):
        r = await client.post("/v1/agencies", headers=admin_h,
                              json={"code": code, "name": code.title(), "jurisdiction": "61.07"})
        assert r.status_code == 201, r.text
    headers = await auditor.headers()

    async def page(**params) -> dict:
        r = await client.get("/v1/audit", headers=headers, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    everything = (await page(limit=500))["items"]
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    e = everything[0]
    assert {"seq", "occurred_at", "client_id", "agency", "action", "resource_type", "resource_id", "outcome",
            "request_id", "hash", "prev_hash"} <= e.keys()

    by_actor = (await page(actor=admin.client_id))["items"]
    assert by_actor and all(e["client_id"] == admin.client_id for e in by_actor)
    assert {e["action"] for e in by_actor} >= {"token.issue", "agency.create"}

    creates = (await page(action="agency.create"))["items"]
    assert {e["action"] for e in creates} == {"agency.create"}
    assert {"DINSOS-BENGKAYANG", "POLRES-BENGKAYANG", "OPERATOR"} <= {e["resource_id"] for e in creates}
    creates = (await page(action="agency.create", actor=admin.client_id))["items"]
    assert sorted(e["resource_id"] for e in creates) == ["DINSOS-BENGKAYANG", "POLRES-BENGKAYANG"]

    one = (await page(resource_type="agency", resource_id="POLRES-BENGKAYANG"))["items"]
    assert [e["action"] for e in one] == ["agency.create"]
    assert (await page(resource_type="agency"))["items"] and not (await page(resource_id="NOPE"))["items"]

    later = datetime.now(UTC) + timedelta(hours=1)
    earlier = datetime.now(UTC) - timedelta(hours=1)
    assert not (await page(**{"from": later.isoformat()}))["items"]
    assert (await page(**{"from": earlier.isoformat()}))["items"]
    assert not (await page(to=earlier.isoformat()))["items"]

    # Pages of 2 walk the whole log once, newest first.
    seen, cursor = [], None
    for _ in range(100):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = await page(**params)
        assert len(body["items"]) <= 2
        seen += [e["seq"] for e in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # Each page read is itself recorded, above the cursor: the walk neither repeats nor skips.
    assert seen[0] > seqs[0]
    assert seen == list(range(seen[0], 0, -1))

    r = await client.get("/v1/audit", headers=headers, params={"cursor": "!!not-a-cursor"})
    assert_problem(r, 400)
    assert_problem(await client.get("/v1/audit", headers=headers, params={"limit": 501}), 422)


async def test_denied_calls_are_audited(client, auditor, make_party, database_url):
    stranger = await make_party("DP3A-KALBAR", "61", ["stats:read"])
    admin = await make_party("OPERATOR", "61", ["admin"], kind=AgencyKind.operator)
    assert_problem(await client.get("/v1/audit/verify", headers=await stranger.headers()), 403)
    assert_problem(await client.get("/v1/audit/verify", headers={"Authorization": "Bearer nope"}), 401)
    r = await client.post("/v1/agencies/NO-SUCH-AGENCY/clients", headers=await admin.headers(),
                          json={"scopes": ["audit:read"]})
    assert_problem(r, 404)
    r = await client.get("/v1/audit", headers=await auditor.headers(), params={"outcome": "denied", "limit": 500})
    denied = [e for e in r.json()["items"] if e["outcome"] == "denied"]
    got = {(e["action"], e["client_id"], e["detail"].get("status")) for e in denied}
    assert ("audit.verify", stranger.client_id, 403) in got
    assert ("audit.verify", None, 401) in got
    assert ("client.create", admin.client_id, 404) in got
    assert len(denied) == 3


async def test_times_without_an_offset_are_a_validation_error(client, auditor):
    headers = await auditor.headers()
    for name in ("from", "to"):
        r = await client.get("/v1/audit", headers=headers, params={name: "2026-01-01T00:00:00"})
        body = assert_problem(r, 422)
        assert [e["field"] for e in body["errors"]] == [f"query.{name}"]
        r = await client.get("/v1/audit", headers=headers, params={name: "2026-01-01T07:00:00+07:00"})
        assert r.status_code == 200, r.text


# --- checkpoints: a rewrite of the whole chain --------------------------------------------


def rewrite_from(database_url: str, seq: int, new_action: str) -> None:
    """What an attacker with the database, but without the service's keys, can do best: change
    an entry and recompute every hash after it, and the head, so the chain is consistent."""
    import orjson

    from api.core.audit import chain_hash

    with as_attacker(database_url) as c:
        rows = c.execute(sa.text("SELECT seq, prev_hash, body FROM audit_event WHERE chain = '61' ORDER BY seq")).all()
        prev = None
        for row_seq, row_prev, body in rows:
            prev = row_prev if prev is None else prev
            if row_seq == seq:
                doc = orjson.loads(body)
                doc["action"] = new_action
                body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()
            digest = chain_hash(prev, row_seq, body)
            c.execute(sa.text("UPDATE audit_event SET body = :b, prev_hash = :p, hash = :h, action = :a "
                              "WHERE chain = '61' AND seq = :s"),
                      {"b": body, "p": prev, "h": digest, "a": orjson.loads(body)["action"], "s": row_seq})
            prev = digest
        c.execute(sa.text("UPDATE audit_head SET hash = :h WHERE chain = '61'"), {"h": prev})


async def test_a_checkpoint_catches_a_rewrite_of_the_whole_chain(client, busy_chain, database_url):
    r = await client.get("/v1/audit/checkpoint", headers=busy_chain)
    assert r.status_code == 200, r.text
    cp = r.json()
    assert cp["seq"] >= 5 and len(cp["hash"]) == 64 and cp["checkpoint"].count(".") == 2
    await client.get("/v1/audit", headers=busy_chain)  # the chain goes on after the checkpoint
    good = (await client.get("/v1/audit/verify", params={"checkpoint": cp["checkpoint"]}, headers=busy_chain)).json()
    assert good["ok"] is True and good["checkpoint"] == {"seq": cp["seq"], "hash": cp["hash"]}

    rewrite_from(database_url, 2, "token.issue.hidden")
    # Recomputed hashes fool a verification without the checkpoint...
    assert (await verify(client, busy_chain))["ok"] is True
    # ...but not one against the checkpoint kept elsewhere.
    bad = (await client.get("/v1/audit/verify", params={"checkpoint": cp["checkpoint"]}, headers=busy_chain)).json()
    assert bad["ok"] is False and bad["first_bad_seq"] == cp["seq"] and "rewritten" in bad["reason"]


async def test_a_checkpoint_catches_a_truncated_chain(client, busy_chain, database_url):
    cp = (await client.get("/v1/audit/checkpoint", headers=busy_chain)).json()
    with as_attacker(database_url) as c:
        last = c.execute(sa.text("SELECT seq, hash FROM audit_event WHERE chain = '61' AND seq = 3")).one()
        c.execute(sa.text("DELETE FROM audit_event WHERE chain = '61' AND seq > 3"))
        c.execute(sa.text("UPDATE audit_head SET seq = 3, hash = :h WHERE chain = '61'"), {"h": last.hash})
    body = (await client.get("/v1/audit/verify", params={"checkpoint": cp["checkpoint"]}, headers=busy_chain)).json()
    assert body["ok"] is False and "before the checkpoint" in body["reason"]


async def test_a_forged_or_foreign_checkpoint_is_refused(client, busy_chain):
    from tests import forge

    cp = (await client.get("/v1/audit/checkpoint", headers=busy_chain)).json()
    header, payload, signature = cp["checkpoint"].split(".")
    tampered = ".".join([header, forge.b64u(b'{"chain":"61","seq":1,"hash":"' + b"0" * 64 + b'"}'), signature])
    r = await client.get("/v1/audit/verify", params={"checkpoint": tampered}, headers=busy_chain)
    assert_problem(r, 422, "bad-checkpoint")
    # an access token is not a checkpoint
    token = busy_chain["Authorization"].split()[1]
    assert_problem(await client.get("/v1/audit/verify", params={"checkpoint": token}, headers=busy_chain), 422)


def tamper(database_url: str, seq: int) -> None:
    """Edit one entry's body in place (its hash no longer matches it)."""
    with as_attacker(database_url) as c:
        c.execute(sa.text("UPDATE audit_event SET body = replace(body, '\"allowed\"', '\"denied\"') "
                          "WHERE chain = '61' AND seq = :s"), {"s": seq})


async def test_verification_from_a_checkpoint_reads_only_the_entries_after_it(client, busy_chain, database_url):
    """What lies before a checkpoint was proven when it was taken: verification against it
    starts at its entry and reads nothing before it, so an entry edited before it is not
    seen (a verification without the checkpoint still sees it), one edited after it is."""
    cp = (await client.get("/v1/audit/checkpoint", headers=busy_chain)).json()
    for _ in range(3):  # the chain goes on after the checkpoint
        assert (await client.get("/v1/audit", headers=busy_chain)).status_code == 200
    before = next(e["seq"] for e in entries(database_url) if e["seq"] < cp["seq"] and e["outcome"] == "allowed")
    tamper(database_url, before)

    r = await client.get("/v1/audit/verify", params={"checkpoint": cp["checkpoint"]}, headers=busy_chain)
    body = r.json()
    assert r.status_code == 200 and body["ok"] is True, body
    assert body["from_seq"] == cp["seq"]
    assert body["checked"] == body["head"]["seq"] - cp["seq"] + 1  # the checkpoint's entry and those after it
    whole = await verify(client, busy_chain)
    assert whole["ok"] is False and whole["first_bad_seq"] == before and whole["from_seq"] == 1

    after = next(e["seq"] for e in entries(database_url) if e["seq"] > cp["seq"] and e["outcome"] == "allowed")
    tamper(database_url, after)
    body = (await client.get("/v1/audit/verify", params={"checkpoint": cp["checkpoint"]}, headers=busy_chain)).json()
    assert body["ok"] is False and body["first_bad_seq"] == after and body["from_seq"] == cp["seq"]


async def test_the_checkpoints_own_entry_is_checked(client, busy_chain, database_url):
    cp = (await client.get("/v1/audit/checkpoint", headers=busy_chain)).json()
    await client.get("/v1/audit", headers=busy_chain)
    tamper(database_url, cp["seq"])
    body = (await client.get("/v1/audit/verify", params={"checkpoint": cp["checkpoint"]}, headers=busy_chain)).json()
    assert body["ok"] is False and body["first_bad_seq"] == cp["seq"]


def test_cli_verifies_against_a_checkpoint_file(sinergi, database_url, tmp_path, busy_chain_sync):
    path = tmp_path / "checkpoint.jws"
    path.write_text(busy_chain_sync)
    ok = sinergi("audit", "verify", "--checkpoint", f"@{path}")
    assert ok.exit_code == 0, ok.output
    rewrite_from(database_url, 2, "token.issue.hidden")
    broken = sinergi("audit", "verify", "--checkpoint", f"@{path}")
    assert broken.exit_code == 1 and "rewritten" in broken.output


@pytest.fixture
async def busy_chain_sync(client, busy_chain):
    return (await client.get("/v1/audit/checkpoint", headers=busy_chain)).json()["checkpoint"]


# --- whose entries an auditor reads -----------------------------------------------------------


async def test_a_district_auditor_reads_only_its_districts_entries(client, auditor, make_party, database_url):
    district = await make_party("INSPEKTORAT-BENGKAYANG", "61.07", ["audit:read"], kind=AgencyKind.inspectorate)
    bengkayang = await make_party("DINSOS-BENGKAYANG", "61.07", ["notices:read"], kind=AgencyKind.social_services)
    sambas = await make_party("DINSOS-SAMBAS", "61.01", ["notices:read"], kind=AgencyKind.social_services)
    province = await make_party("BP3MI-KALBAR", "61", ["notices:read"], kind=AgencyKind.migrant_protection)
    for party in (bengkayang, sambas, province):
        assert (await client.get("/v1/notices", headers=await party.headers())).status_code == 200
    await client.get("/v1/notices", headers={"Authorization": "Bearer nope"})  # unauthenticated: no agency

    async def listed(party, **params) -> list[dict]:
        r = await client.get("/v1/audit", headers=await party.headers(), params={"limit": 500} | params)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    everything = await listed(auditor)
    assert {"DINSOS-BENGKAYANG", "DINSOS-SAMBAS", "BP3MI-KALBAR", None} <= {e["agency"] for e in everything}

    seen = await listed(district)
    assert seen and {e["agency"] for e in seen} == {"DINSOS-BENGKAYANG", "INSPEKTORAT-BENGKAYANG"}
    # what the agency did, and the operator's creation of its client (an entry in its agency's name)
    assert {e["action"] for e in seen if e["agency"] == "DINSOS-BENGKAYANG"} == {"client.create", "token.issue",
                                                                               "notice.list"}
    # filters cannot reach past the jurisdiction, and neither can paging
    assert await listed(district, agency="DINSOS-SAMBAS") == []
    assert await listed(district, actor=sambas.client_id) == []
    first = (await client.get("/v1/audit", headers=await district.headers(), params={"limit": 1})).json()
    rest = await listed(district, cursor=first["next_cursor"])
    assert {e["agency"] for e in rest} <= {"DINSOS-BENGKAYANG", "INSPEKTORAT-BENGKAYANG"}
    # another province's chain is not there at all
    assert_problem(await client.get("/v1/audit", headers=await district.headers(), params={"chain": "62"}), 404)

    # Verification still covers the whole chain, and says nothing but counts and hashes.
    r = await client.get("/v1/audit/verify", headers=await district.headers())
    body = r.json()
    assert body["ok"] is True and body["checked"] == body["head"]["seq"] == len(entries(database_url)) - 1
    assert set(body) <= {"ok", "chain", "checked", "from_seq", "head", "first_bad_seq", "reason", "checkpoint"}
    assert "DINSOS-SAMBAS" not in r.text and sambas.client_id not in r.text
    cp = await client.get("/v1/audit/checkpoint", headers=await district.headers())
    assert cp.status_code == 200 and set(cp.json()) == {"chain", "seq", "hash", "checkpoint"}

    # The district's reading is itself recorded, with the restriction it read under.
    mine = [e for e in await listed(auditor, action="audit.list")
            if e["client_id"] == district.client_id and e["outcome"] == "allowed"]
    assert mine and all(e["detail"]["within"] == "61.07" for e in mine)


async def test_a_chain_without_a_head_begins_at_the_genesis(db):
    """The first entry of a province whose chain has no head yet (a new province's first
    caller) makes the head as it is appended: sequence 1 after the genesis hash, and the chain
    verifies; the next entry follows it. Single entries (a read's) and a unit's several entries
    go the same way."""
    from api.core import audit
    from api.core.context import Caller, RequestContext
    from api.core.unit import open_unit
    from models import GENESIS_HASH

    caller = Caller("cl_new_province", "DP3A-KALTENG", AgencyKind.women_child_protection, "62", frozenset(), "t")
    assert await audit.head(db, "62") == (0, GENESIS_HASH)
    async with open_unit(db, RequestContext(request_id="r1", caller=caller)) as unit:
        unit.audit("stats.read", resource_type="stats", resource_id="returnees")
    seq, first = await audit.head(db, "62")
    assert seq == 1 and first == audit.chain_hash(GENESIS_HASH, 1, await _body(db, "62", 1))
    async with open_unit(db, RequestContext(request_id="r2", caller=caller)) as unit:
        unit.audit("stats.read", resource_type="stats", resource_id="returnees")
        unit.audit("stats.read", resource_type="stats", resource_id="referrals")
    result = await audit.verify(db, "62")
    assert (result.ok, result.checked, result.head_seq) == (True, 3, 3), result


async def test_an_entry_is_kept_exactly_as_built_whatever_text_it_holds(db):
    """A unit's entries go to the database as data (on PostgreSQL one JSON array for the chain's
    function, sent as a literal): quotes, backslashes, escapes, placeholders, line breaks and
    characters beyond ASCII in what an entry says come back byte for byte, in the order the
    unit recorded them, each hashed by the chain's rule with its subjects written."""
    from api.core import audit
    from api.core import text as text_rules
    from api.core.context import Caller, RequestContext
    from api.core.unit import open_unit

    caller = Caller("cl_text", "DP3A-KALTENG", AgencyKind.women_child_protection, "62", frozenset(), "t")
    awkward = ["it's \"quoted\"", "back\\slash \\n not a newline", "%s %(name)s $1 ?", "baris\nbaru\ttab",
               "Dayak Kanayatn — ñ ü 漢字 🙂", "'); DROP TABLE audit_event; --", "\\u0000 spelled out"]
    async with open_unit(db, RequestContext(request_id="r-text", caller=caller, claimed_user=awkward[0])) as unit:
        for n, value in enumerate(awkward):
            unit.audit("stats.read", resource_type="stats", resource_id=f"returnees-{n}", note=value)
    async with db.read() as conn:
        rows = (await conn.execute(sa.text(
            "SELECT seq, prev_hash, hash, body, resource_id FROM audit_event WHERE chain = '62' ORDER BY seq"))).all()
        subjects = set((await conn.execute(sa.text(
            "SELECT s.resource_id FROM audit_subject s JOIN audit_event e ON e.id = s.event_id "
            "WHERE e.chain = '62'"))).scalars())
    assert [r.resource_id for r in rows] == [f"returnees-{n}" for n in range(len(awkward))]
    # control characters are shown as escapes (api.core.text), nothing else changes
    assert [json.loads(r.body)["detail"]["note"] for r in rows] == \
        [text_rules.bounded(v, text_rules.MAX_DETAIL_TEXT) for v in awkward]
    assert [json.loads(r.body)["detail"]["note"] for r in rows if "baris" not in r.body] == \
        [v for v in awkward if "baris" not in v]
    assert json.loads(rows[0].body)["on_behalf_of"] == awkward[0]
    prev = rows[0].prev_hash
    for r in rows:
        assert r.prev_hash == prev and r.hash == audit.chain_hash(prev, r.seq, r.body)
        prev = r.hash
    assert subjects == {f"returnees-{n}" for n in range(len(awkward))}
    assert (await audit.head(db, "62")) == (rows[-1].seq, rows[-1].hash)
    assert (await audit.verify(db, "62")).ok


async def _body(db, chain: str, seq: int) -> str:
    async with db.read() as conn:
        return (await conn.execute(sa.text("SELECT body FROM audit_event WHERE chain = :c AND seq = :s"),
                                   {"c": chain, "s": seq})).scalar_one()


async def test_a_request_after_its_prepared_statements_vanished_is_refused_once_and_the_next_prepares_again(
        settings, make_party, backend, database_url):
    """On PostgreSQL psycopg prepares the statements read at the driver (every request's caller
    lookup, ``api.core.db.rows``) once a connection. When they are gone without psycopg knowing
    (deallocated by someone else on the connection), the request using them is refused as busy,
    nothing of it committed and its refusal recorded, and the next request on that connection
    prepares them again instead of failing for ever (a refused request is told to retry)."""
    if backend.name != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    import httpx

    from api.app import create_app

    one = settings.model_copy(update={"db_pool_size": 1, "webhook_worker": False})  # one connection: the same one
    app = create_app(one, configure_logging=False)
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)
    headers = await auditor.headers()
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            for _ in range(3):
                assert (await c.get("/v1/audit", headers=headers, params={"limit": 1})).status_code == 200
            # Deallocated behind psycopg's back (nothing tells the service): that request is refused
            # as busy, nothing of it committed (its failure is recorded), the next one prepares again.
            db = app.state.services.db
            async with db.engine.connect() as conn:  # sent by libpq itself: psycopg sees no statement
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw.pgconn.exec_(b"DEALLOCATE ALL").command_status == b"DEALLOCATE ALL"
                await raw.commit()  # and no rollback (after which psycopg deallocates every statement itself)
            before = entries(database_url)[-1]["seq"]  # on a connection of its own, not the service's one
            busy = assert_problem(await c.get("/v1/audit", headers=headers, params={"limit": 1}), 503)
            assert "nothing was changed" in busy["detail"]
            *_, last = entries(database_url)  # only the refusal itself is recorded, as failed
            assert (last["seq"], last["outcome"]) == (before + 1, "failed")
            assert (await c.get("/v1/audit", headers=headers, params={"limit": 1})).status_code == 200
            r = await c.get("/v1/audit/verify", headers=headers)
            assert r.json()["ok"] is True, r.json()
