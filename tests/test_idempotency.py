"""Idempotent replays (api/http/idempotency.py): a replay never shows more than a fresh request
by the same token would, and its audit entry names what it shows again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from api.core import clock, crypto
from api.core.unit import operator_unit
from models import AgencyKind, AuditEvent, AuditSubject, IdempotencyRecord, Referral
from tests.conftest import Party, assert_problem

PHONE = "+62 812 3456 7890"
PHONE_DIGITS = ["812 3456 7890", "81234567890"]
WITHOUT_PII = "referrals:write referrals:read"


def referral_body() -> dict[str, Any]:
    return {
        "to_agency": "POLRES-BENGKAYANG",
        "subject": {"full_name": "Rina", "sex": "F", "birth_date": "1998-02-03", "district": "61.07.07",
                    "phone": PHONE},
        "reason": "suspected_tppo_victim",
        "legal_basis": "UU-21-2007:51",
        "urgency": "normal",
        "consent": {"given": True, "given_by": "Rina (the subject)", "given_at": "2025-05-20T03:00:00Z",
                    "method": "written"},
        "note": "Deported via PLBN Aruk",
    }


@pytest.fixture
async def sender(make_party) -> Party:
    """BP3MI's client: its tokens hold pii:read unless they ask for less."""
    await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond", kind=AgencyKind.police)
    return await make_party("BP3MI-KALBAR", "61", f"{WITHOUT_PII} pii:read returnees:write returnees:read",
                            kind=AgencyKind.migrant_protection)


async def entry_of(db, response) -> tuple[AuditEvent, dict[str, Any], set[tuple[str, str]]]:
    """The audit entry of the request that got ``response`` (by its request id), its body and subjects."""
    async with db.sessionmaker() as s:
        rows = (await s.execute(sa.select(AuditEvent).where(
            AuditEvent.request_id == response.headers["x-request-id"]))).scalars().all()
        assert len(rows) == 1, [r.action for r in rows]
        subjects = {(t, i) for t, i in (await s.execute(
            sa.select(AuditSubject.resource_type, AuditSubject.resource_id)
            .where(AuditSubject.event_id == rows[0].id))).all()}
    return rows[0], orjson.loads(rows[0].body), subjects


async def referral_count(db) -> int:
    async with db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(Referral))).scalar_one()


async def test_replay_to_a_token_without_pii_read_does_not_show_the_phone(client, db, sender):
    key = {"Idempotency-Key": "ref-K"}
    first = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(**key))
    assert first.status_code == 201, first.text
    assert first.json()["subject"]["phone"] == PHONE  # the first token holds pii:read
    ref_id = first.json()["id"]

    retry = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(WITHOUT_PII, **key))
    body = assert_problem(retry, 422, "idempotency-replay-needs-scopes")
    assert body["missing_scopes"] == ["pii:read"]
    assert "idempotent-replayed" not in retry.headers
    for digits in PHONE_DIGITS:
        assert digits not in retry.text
    assert await referral_count(db) == 1  # the retry did not create another

    entry, audited, subjects = await entry_of(db, retry)
    assert (entry.action, entry.outcome) == ("referral.create", "denied")
    assert (entry.resource_type, entry.resource_id) == ("referral", ref_id)
    assert ("referral", ref_id) in subjects
    assert audited["detail"]["replay"] is True and audited["detail"]["missing_scopes"] == "pii:read"

    # what the problem advises: the result, read afresh, as this token may see it
    fresh = await client.get(f"/v1/referrals/{ref_id}", headers=await sender.headers(WITHOUT_PII))
    assert fresh.status_code == 200
    assert fresh.json()["subject"]["phone"] != PHONE


async def test_a_replay_is_audited_with_the_resource_it_shows(client, db, sender):
    key = {"Idempotency-Key": "ref-again"}
    first = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(**key))
    again = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(**key))
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    ref_id = first.json()["id"]

    entry, audited, subjects = await entry_of(db, again)
    assert (entry.action, entry.outcome) == ("referral.create", "allowed")
    assert (entry.resource_type, entry.resource_id) == ("referral", ref_id)
    assert ("referral", ref_id) in subjects
    assert audited["detail"]["replay"] is True and audited["detail"]["status"] == 201


async def test_a_replay_to_more_scopes_shows_what_the_first_caller_saw(client, sender):
    key = {"Idempotency-Key": "ref-masked"}
    first = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(WITHOUT_PII, **key))
    assert first.status_code == 201 and first.json()["subject"]["phone"] != PHONE
    again = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(**key))
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


async def test_a_batch_replay_names_its_returnees(client, db, sender):
    records = [
        {"source_ref": f"IDEM-{n}", "full_name": "Siti Aminah", "sex": "F", "birth_date": "1990-05-05",
         "origin_district": "61.07", "origin_subdistrict": "61.07.07", "returned_from_country": "MY",
         "return_type": "deported", "return_date": "2025-03-14", "entry_point": "PLBN Jagoi Babang"}
        for n in (1, 2)
    ]
    headers = await sender.headers(**{"Idempotency-Key": "batch-1"})
    first = await client.post("/v1/returnees/batch", json={"records": records}, headers=headers)
    assert first.status_code == 200, first.text
    ids = {r["id"] for r in first.json()["results"]}
    again = await client.post("/v1/returnees/batch", json={"records": records}, headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    entry, audited, subjects = await entry_of(db, again)
    assert entry.action == "returnee.batch" and audited["detail"]["replay"] is True
    assert {("returnee", i) for i in ids} <= subjects


async def test_a_record_kept_before_the_envelope_is_replayed_only_to_every_view_scope(client, db, sender):
    """Records written by the previous release (the reply alone, under its older encryption
    context) are still replayed, as replies that may show everything."""
    key = {"Idempotency-Key": "old-key"}
    first = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(**key))
    assert first.status_code == 201, first.text
    data_key = db.settings.data_key_bytes
    async with operator_unit(db, "test") as session:  # rewrite the record as the previous release kept it
        record = await session.get(IdempotencyRecord, (sender.client_id, "old-key"))
        assert record is not None
        reply = orjson.loads(crypto.decrypt(record.response_body, context="idempotency.record", key=data_key))["reply"]
        record.response_body = crypto.encrypt(reply, context="idempotency.response", key=data_key)
        session.add(record)

    lesser = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(WITHOUT_PII, **key))
    assert_problem(lesser, 422, "idempotency-replay-needs-scopes")
    assert PHONE not in lesser.text
    full = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(**key))
    assert full.status_code == 201 and full.headers["idempotent-replayed"] == "true"
    assert full.json() == first.json()
    assert await referral_count(db) == 1


async def test_a_key_lives_by_the_database_clock_not_the_servers(client, db, sender):
    """A server whose clock is 49 hours ahead still replays a key stored a moment ago (its
    expiry is the database's time, written and compared by the database); a record whose
    expiry the database has passed is done afresh."""
    key = {"Idempotency-Key": "clock-skew-1"}
    first = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(**key))
    assert first.status_code == 201, first.text
    with clock.frozen(clock.now() + timedelta(hours=49)):
        again = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(**key))
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"] and await referral_count(db) == 1

    async with db.sessionmaker() as s, s.begin():  # the database's clock passes the expiry
        await s.execute(sa.update(IdempotencyRecord).where(IdempotencyRecord.key == "clock-skew-1")
                        .values(expires_at=clock.now() - timedelta(seconds=1)))
    fresh = await client.post("/v1/referrals", json=referral_body(), headers=await sender.headers(**key))
    assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    assert fresh.json()["id"] != first.json()["id"] and await referral_count(db) == 2
