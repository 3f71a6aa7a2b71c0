"""Referrals: creation rules, the state machine, who sees what, queries, events and audit."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from api.core import audit, clock, crypto
from api.core.context import Caller
from api.core.settings import Settings
from api.core.unit import operator_unit
from api.referrals import repository
from models import (
    AgencyKind,
    AuditEvent,
    AuditSubject,
    Event,
    Person,
    Referral,
    ReferralHistory,
    ReferralStatus,
    Returnee,
    Urgency,
)
from tests.conftest import Party, assert_not_stored, assert_problem

CONSENT = {"given": True, "given_by": "Siti (the subject)", "given_at": "2025-05-20T03:00:00Z", "method": "written"}


@dataclass
class World:
    sender: Party  # BP3MI-KALBAR, province 61
    receiver: Party  # POLRES-BENGKAYANG, 61.07
    third: Party  # DP3A-SAMBAS, 61.01
    oversight: Party  # task force 61.07
    other_oversight: Party  # task force 61.01


@pytest.fixture
async def world(make_party) -> World:
    return World(
        sender=await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read", kind=AgencyKind.migrant_protection),
        receiver=await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond referrals:write",
                                  kind=AgencyKind.police),
        third=await make_party("DP3A-SAMBAS", "61.01", "referrals:read referrals:respond referrals:write",
                               kind=AgencyKind.women_child_protection),
        oversight=await make_party("GUGUS-TPPO-BENGKAYANG", "61.07", "referrals:read", kind=AgencyKind.task_force),
        other_oversight=await make_party("GUGUS-TPPO-SAMBAS", "61.01", "referrals:read", kind=AgencyKind.task_force),
    )


async def add_returnee(db, *, source: str = "BP3MI-KALBAR", district: str = "61.07", birth: date | None = None) -> uuid.UUID:
    async with operator_unit(db, "test") as session:
        person = Person()
        session.add(person)
        await session.flush()
        r = Returnee(source_agency=source, source_ref=uuid.uuid4().hex[:12], person_id=person.id, content_hash="x" * 64,
                     full_name="Siti Aminah", sex="F", birth_date=birth or date(1995, 5, 15),
                     nik_enc=crypto.encrypt("6101075505950001", context="returnee.nik", key=Settings().data_key_bytes), origin_district=district, origin_subdistrict=f"{district}.07",
                     return_type="deported", return_date=date(2025, 6, 1), entry_point="PLBN Aruk")
        session.add(r)
        await session.flush()
        return r.id


def caller_of(party: Party, kind: AgencyKind) -> Caller:
    """The party as the services see it, for calling a repository function directly."""
    return Caller(client_id=party.client_id, agency=party.agency, agency_kind=kind, jurisdiction=party.jurisdiction,
                  scopes=frozenset(party.scopes), token_id="test")


def referral_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "to_agency": "POLRES-BENGKAYANG",
        "subject": {"full_name": "Rina", "sex": "F", "birth_date": "1998-02-03", "district": "61.07.07",
                    "phone": "+62 812 3456 7890"},
        "reason": "suspected_tppo_victim",
        "legal_basis": "UU-21-2007:51",
        "urgency": "normal",
        "consent": CONSENT,
        "note": "Deported via PLBN Aruk, passport held by the employer",
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


async def create(client, party: Party, **over: Any) -> dict[str, Any]:
    r = await client.post("/v1/referrals", json=referral_body(**over), headers=await party.headers())
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/referrals/{r.json()['id']}"
    assert r.headers["etag"] == '"1"'
    return r.json()


async def move(client, party: Party, ref: dict[str, Any], action: str, note: str | None = None,
               etag: str | None = None) -> Any:
    body: dict[str, Any] = {"action": action}
    if note is not None:
        body["note"] = note
    headers = await party.headers(**{"If-Match": etag or f'"{ref["version"]}"'})
    return await client.post(f"/v1/referrals/{ref['id']}/transitions", json=body, headers=headers)


async def stored_referral(s, id: str) -> Referral:
    return (await s.execute(sa.select(Referral).where(Referral.id == uuid.UUID(id)))).scalar_one()


async def stored(db, id: str) -> Referral:
    async with db.sessionmaker() as s:
        return (await s.execute(sa.select(Referral).where(Referral.id == uuid.UUID(id)))).scalar_one()


# --- creation ------------------------------------------------------------------------------


async def test_create_and_read(client, world):
    ref = await create(client, world.sender)
    assert ref["status"] == "requested"
    assert ref["from_agency"] == "BP3MI-KALBAR" and ref["to_agency"] == "POLRES-BENGKAYANG"
    assert ref["consent_status"] == "given" and ref["overdue"] is False
    due = datetime.fromisoformat(ref["due_at"])
    created = datetime.fromisoformat(ref["created_at"])
    assert due - created == timedelta(days=7)
    assert ref["subject"]["phone"] is None and ref["subject"]["phone_on_file"] is True  # no pii:read
    assert ref["history"] == [{"from": None, "to": "requested", "action": "request", "by": "BP3MI-KALBAR",
                               "at": ref["created_at"], "note": ref["note"]}]
    r = await client.get(f"/v1/referrals/{ref['id']}", headers=await world.receiver.headers())
    assert r.status_code == 200 and r.headers["etag"] == '"1"'
    assert r.json()["id"] == ref["id"]


@pytest.mark.parametrize("urgency,hours", [("emergency", 24), ("high", 72), ("normal", 168)])
async def test_due_from_urgency(client, world, urgency, hours):
    t = datetime(2025, 6, 12, 3, 0, tzinfo=UTC)
    with clock.frozen(t):
        ref = await create(client, world.sender, urgency=urgency)
    assert datetime.fromisoformat(ref["due_at"]) == t + timedelta(hours=hours)


async def test_create_rules(client, world, db):
    h = await world.sender.headers()
    # unknown or own agency
    for to in ("NOPE", "BP3MI-KALBAR"):
        body = assert_problem(await client.post("/v1/referrals", json=referral_body(to_agency=to), headers=h), 422)
        assert body["errors"][0]["field"] == "to_agency"
    # neither returnee nor subject; both
    body = assert_problem(await client.post("/v1/referrals", json=referral_body(subject=None), headers=h), 422)
    assert body["errors"][0]["field"] == "subject"
    # a returnee that does not exist
    body = assert_problem(await client.post(
        "/v1/referrals", json=referral_body(subject=None, returnee_id=str(uuid.uuid4())), headers=h), 422)
    assert body["errors"][0]["field"] == "returnee_id"
    # bad legal basis, bad reason
    assert_problem(await client.post("/v1/referrals", json=referral_body(legal_basis="article 51"), headers=h), 422)
    assert_problem(await client.post("/v1/referrals", json=referral_body(reason="fun"), headers=h), 422)
    # a sender without referrals:write
    r = await client.post("/v1/referrals", json=referral_body(), headers=await world.oversight.headers())
    assert_problem(r, 403, "insufficient-scope")
    async with db.sessionmaker() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(Referral))).scalar() == 0


async def test_returnee_must_be_visible_to_sender(client, world, db):
    # POLRES (61.07) may refer a returnee from 61.07, not one from Sambas it did not push
    in_district = await add_returnee(db, district="61.07")
    elsewhere = await add_returnee(db, district="61.01")
    h = await world.receiver.headers()
    ok = await client.post("/v1/referrals", headers=h, json=referral_body(
        to_agency="DP3A-SAMBAS", subject=None, returnee_id=str(in_district)))
    assert ok.status_code == 201, ok.text
    assert ok.json()["returnee_id"] == str(in_district) and ok.json()["subject"] is None
    body = assert_problem(await client.post("/v1/referrals", headers=h, json=referral_body(
        to_agency="DP3A-SAMBAS", subject=None, returnee_id=str(elsewhere))), 422)
    assert body["errors"][0]["field"] == "returnee_id"
    # BP3MI pushed it: it may refer it wherever it is from
    await create(client, world.sender, subject=None, returnee_id=str(elsewhere), to_agency="DP3A-SAMBAS")


async def test_a_subdistrict_agency_refers_the_returnee_it_reads(client, world, db, make_party):
    """Reading and referring use the same rule: an agency of sub-district 61.07.07 reads a
    returnee of 61.07.07 (its origin district is 61.07, outside that jurisdiction) and may
    refer it; one of another sub-district may do neither."""
    rid = await add_returnee(db, district="61.07")  # origin_subdistrict 61.07.07
    puskesmas = await make_party("PUSKESMAS-JAGOI", "61.07.07", "returnees:read referrals:write referrals:read",
                                 kind=AgencyKind.health)
    neighbour = await make_party("PUSKESMAS-SELUAS", "61.07.05", "returnees:read referrals:write referrals:read",
                                 kind=AgencyKind.health)
    r = await client.get(f"/v1/returnees/{rid}", headers=await puskesmas.headers())
    assert r.status_code == 200, r.text
    ref = await create(client, puskesmas, subject=None, returnee_id=str(rid))
    assert ref["returnee_id"] == str(rid) and ref["from_agency"] == "PUSKESMAS-JAGOI"
    assert_problem(await client.get(f"/v1/returnees/{rid}", headers=await neighbour.headers()), 404)
    body = assert_problem(await client.post("/v1/referrals", headers=await neighbour.headers(), json=referral_body(
        subject=None, returnee_id=str(rid))), 422)
    assert body["errors"][0]["field"] == "returnee_id"


async def test_consent_rules(client, world, db):
    h = await world.sender.headers()
    # no consent and no processing basis
    body = assert_problem(await client.post("/v1/referrals", json=referral_body(consent=None), headers=h), 422)
    assert body["errors"][0]["field"] == "processing_basis"
    body = assert_problem(await client.post(
        "/v1/referrals", json=referral_body(consent={"given": False}), headers=h), 422)
    assert body["errors"][0]["field"] == "processing_basis"
    # consent given, but not by whom / when / how
    body = assert_problem(await client.post(
        "/v1/referrals", json=referral_body(consent={"given": True}), headers=h), 422)
    assert body["errors"][0]["field"] == "consent"
    body = assert_problem(await client.post(
        "/v1/referrals", json=referral_body(consent={**CONSENT, "given_at": "2999-01-01T00:00:00Z"}), headers=h), 422)
    assert body["errors"][0]["field"] == "consent.given_at"
    # a child (inline) without a guardian
    child = {"full_name": "Putri", "sex": "F", "birth_date": "2012-01-01"}
    body = assert_problem(await client.post(
        "/v1/referrals", json=referral_body(subject=child), headers=h), 422)
    assert "guardian" in body["errors"][0]["message"]
    assert_problem(await client.post(
        "/v1/referrals", json=referral_body(subject={"full_name": "X", "is_child": True}), headers=h), 422)
    ok = await create(client, world.sender, subject=child, consent={**CONSENT, "guardian": "Ibu Maria (mother)"})
    assert ok["subject"]["is_child"] is True and ok["consent"]["guardian"] == "Ibu Maria (mother)"
    # a returnee who is a child, without a guardian
    kid = await add_returnee(db, birth=date(2011, 3, 3))
    body = assert_problem(await client.post(
        "/v1/referrals", json=referral_body(subject=None, returnee_id=str(kid)), headers=h), 422)
    assert body["errors"][0]["field"] == "consent.guardian"
    # without consent, on a processing basis: the output says so
    ref = await create(client, world.sender, consent={"given": False}, processing_basis="vital_interest")
    assert ref["consent_status"] == "not_given" and ref["processing_basis"] == "vital_interest"
    ref = await create(client, world.sender, consent=None, processing_basis="public_task")
    assert ref["consent_status"] == "not_given" and ref["consent"]["given"] is False


async def test_idempotent_create(client, world, db):
    h = await world.sender.headers(**{"Idempotency-Key": "case-77"})
    first = await client.post("/v1/referrals", json=referral_body(), headers=h)
    again = await client.post("/v1/referrals", json=referral_body(), headers=h)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert_problem(await client.post("/v1/referrals", json=referral_body(urgency="high"), headers=h), 422)
    async with db.sessionmaker() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(Referral))).scalar() == 1


async def test_sender_ref_unique_per_sender(client, world):
    await create(client, world.sender, sender_ref="BP3MI/2025/001")
    r = await client.post("/v1/referrals", json=referral_body(sender_ref="BP3MI/2025/001"),
                          headers=await world.sender.headers())
    assert_problem(r, 409)


async def test_enum_columns_store_the_values_and_read_back_members(client, world, db):
    """The status is stored as the API writes it ("in-progress", the value, not the name
    in_progress: filters, statistics and existing rows depend on it) and read back as a member."""
    ref = await create(client, world.sender)
    for action in ("receive", "accept", "start"):
        r = await move(client, world.receiver, ref, action)
        assert r.status_code == 200, r.text
        ref = r.json()
    async with db.sessionmaker() as s:
        raw = (await s.execute(sa.text("SELECT status, reason, urgency FROM referral"))).one()
        assert tuple(raw) == ("in-progress", "suspected_tppo_victim", "normal")
        stored = await stored_referral(s, ref["id"])
        assert stored.status is ReferralStatus.in_progress and stored.urgency is Urgency.normal
        history = (await s.execute(sa.text("SELECT to_status FROM referral_history ORDER BY seq"))).scalars().all()
        assert history == ["requested", "received", "accepted", "in-progress"]
    r = await client.get("/v1/referrals", params={"status": "in-progress"}, headers=await world.sender.headers())
    assert [i["id"] for i in r.json()["items"]] == [ref["id"]]


# --- the state machine ---------------------------------------------------------------------


async def test_happy_path_with_history(client, world, db):
    ref = await create(client, world.sender)
    steps = [("receive", "received"), ("accept", "accepted"), ("start", "in-progress"), ("hold", "on-hold"),
             ("resume", "in-progress"), ("complete", "completed")]
    for i, (action, status) in enumerate(steps, start=2):
        r = await move(client, world.receiver, ref, action, note=f"{action} done")
        assert r.status_code == 200, r.text
        ref = r.json()
        assert ref["status"] == status and ref["version"] == i
        assert r.headers["etag"] == f'"{i}"'
    assert [(h["from"], h["to"], h["action"], h["by"]) for h in ref["history"]] == [
        (None, "requested", "request", "BP3MI-KALBAR"),
        ("requested", "received", "receive", "POLRES-BENGKAYANG"),
        ("received", "accepted", "accept", "POLRES-BENGKAYANG"),
        ("accepted", "in-progress", "start", "POLRES-BENGKAYANG"),
        ("in-progress", "on-hold", "hold", "POLRES-BENGKAYANG"),
        ("on-hold", "in-progress", "resume", "POLRES-BENGKAYANG"),
        ("in-progress", "completed", "complete", "POLRES-BENGKAYANG"),
    ]
    assert ref["history"][-1]["note"] == "complete done"
    assert ref["closed_at"] is not None
    # the sender sees the same history
    r = await client.get(f"/v1/referrals/{ref['id']}", headers=await world.sender.headers())
    assert r.json()["history"] == ref["history"]

    async with db.sessionmaker() as s:
        events = (await s.execute(sa.select(Event.type, Event.data, Event.audience).order_by(Event.pos))).all()
        audits = (await s.execute(
            sa.select(AuditEvent.action, AuditEvent.agency)
            .join(AuditSubject, AuditSubject.event_id == AuditEvent.id)
            .where(AuditSubject.resource_type == "referral", AuditSubject.resource_id == ref["id"])
            .order_by(AuditEvent.seq)
        )).all()
    assert [e[0] for e in events] == ["referral.requested"] + ["referral.status_changed"] * 6
    changed = orjson.loads(events[1][1])
    assert changed == {"id": ref["id"], "from": "requested", "to": "received", "action": "receive",
                       "from_agency": "BP3MI-KALBAR", "to_agency": "POLRES-BENGKAYANG"}
    assert events[1][2] == "BP3MI-KALBAR POLRES-BENGKAYANG"
    moves = [a for a in audits if a[0].startswith("referral.") and a[0] not in ("referral.read", "referral.create")]
    assert [a[0] for a in moves] == [f"referral.{s[0]}" for s in steps]
    assert all(a[1] == "POLRES-BENGKAYANG" for a in moves)
    assert ("referral.create", "BP3MI-KALBAR") in audits


async def _to(client, world, status: str) -> dict[str, Any]:
    path = {"requested": [], "received": ["receive"], "accepted": ["receive", "accept"],
            "in-progress": ["receive", "accept", "start"], "on-hold": ["receive", "accept", "start", "hold"],
            "completed": ["receive", "accept", "start", "complete"],
            "rejected": ["receive", "reject"], "failed": ["receive", "accept", "start", "fail"]}[status]
    ref = await create(client, world.sender)
    for action in path:
        r = await move(client, world.receiver, ref, action, note="because")
        assert r.status_code == 200, r.text
        ref = r.json()
    return ref


FORBIDDEN = [
    ("requested", "receiver", "accept"),
    ("requested", "receiver", "start"),
    ("requested", "sender", "receive"),
    ("received", "sender", "accept"),
    ("received", "receiver", "cancel"),
    ("received", "receiver", "complete"),
    ("accepted", "receiver", "resume"),
    ("in-progress", "receiver", "accept"),
    ("on-hold", "receiver", "complete"),
    ("completed", "receiver", "start"),
    ("completed", "receiver", "resume"),
    ("completed", "sender", "cancel"),
    ("rejected", "receiver", "accept"),
    ("failed", "sender", "cancel"),
]


@pytest.mark.parametrize("status,who,action", FORBIDDEN)
async def test_forbidden_moves_are_409_and_change_nothing(client, world, db, status, who, action):
    ref = await _to(client, world, status)
    party = world.sender if who == "sender" else world.receiver
    async with db.sessionmaker() as s:
        events_before = (await s.execute(sa.select(sa.func.count()).select_from(Event))).scalar()
    r = await move(client, party, ref, action, note="why not")
    assert_problem(r, 409)
    r = await client.get(f"/v1/referrals/{ref['id']}", headers=await world.sender.headers())
    assert r.json()["status"] == status and r.json()["version"] == ref["version"]
    assert r.json()["history"] == ref["history"]
    async with db.sessionmaker() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(Event))).scalar() == events_before


@pytest.mark.parametrize("status", ["requested", "received", "accepted", "in-progress", "on-hold"])
async def test_sender_cancels_any_open_state(client, world, status):
    ref = await _to(client, world, status)
    r = await move(client, world.sender, ref, "cancel", note="the person was found at home")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert r.json()["history"][-1]["by"] == "BP3MI-KALBAR"


async def test_reject_and_fail_need_a_note(client, world):
    ref = await _to(client, world, "received")
    for note in (None, "  "):
        body = assert_problem(await move(client, world.receiver, ref, "reject", note=note), 422)
        assert body["errors"][0]["field"] == "note"
    r = await move(client, world.receiver, ref, "reject", note="not our jurisdiction: refer to Polres Sambas")
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    ref = await _to(client, world, "in-progress")
    assert_problem(await move(client, world.receiver, ref, "fail"), 422)
    r = await move(client, world.receiver, ref, "fail", note="the victim could not be reached")
    assert r.json()["status"] == "failed"


async def test_if_match(client, world):
    ref = await create(client, world.sender)
    r = await client.post(f"/v1/referrals/{ref['id']}/transitions", json={"action": "receive"},
                          headers=await world.receiver.headers())
    assert_problem(r, 428)
    assert_problem(await move(client, world.receiver, ref, "receive", etag='"7"'), 412)
    assert (await move(client, world.receiver, ref, "receive")).status_code == 200
    # the old ETag is stale now
    assert_problem(await move(client, world.receiver, ref, "accept"), 412)


async def test_scope_of_each_party(client, world, make_party):
    ref = await create(client, world.sender)
    # the receiver's client without referrals:respond may not move it
    write_only = await make_party("POLRES-BENGKAYANG", "61.07", "referrals:write referrals:read")
    r = await move(client, write_only, ref, "receive")
    assert_problem(r, 403, "insufficient-scope")
    assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="referrals:respond"'
    # the sender's client without referrals:write may not cancel
    respond_only = await make_party("BP3MI-KALBAR", "61", "referrals:respond referrals:read")
    r = await move(client, respond_only, ref, "cancel")
    assert_problem(r, 403)
    assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="referrals:write"'


async def test_concurrent_accepts_one_wins(client, world, db):
    ref = await _to(client, world, "received")
    h1 = await world.receiver.headers(**{"If-Match": '"2"'})
    h2 = await world.receiver.headers(**{"If-Match": '"2"'})
    url = f"/v1/referrals/{ref['id']}/transitions"
    r1, r2 = await asyncio.gather(client.post(url, json={"action": "accept"}, headers=h1),
                                  client.post(url, json={"action": "accept"}, headers=h2))
    codes = sorted([r1.status_code, r2.status_code])
    assert codes[0] == 200 and codes[1] in (409, 412), (r1.text, r2.text)
    r = await client.get(f"/v1/referrals/{ref['id']}", headers=await world.receiver.headers())
    assert r.json()["status"] == "accepted" and r.json()["version"] == 3
    assert [h["action"] for h in r.json()["history"]] == ["request", "receive", "accept"]


# --- who sees what -------------------------------------------------------------------------


async def test_third_agency_sees_nothing(client, world):
    ref = await create(client, world.sender)
    h = await world.third.headers()
    assert_problem(await client.get(f"/v1/referrals/{ref['id']}", headers=h), 404)
    assert_problem(await client.get(f"/v1/referrals/{uuid.uuid4()}", headers=h), 404)
    assert (await client.get("/v1/referrals", headers=h)).json() == {"items": [], "next_cursor": None}
    assert_problem(await move(client, world.third, ref, "receive"), 404)
    assert_problem(await move(client, world.third, ref, "cancel"), 404)


async def test_oversight_sees_its_jurisdiction(client, world, make_party):
    bengkayang = await create(client, world.sender)  # to POLRES-BENGKAYANG (61.07)
    sambas = await create(client, world.sender, to_agency="DP3A-SAMBAS",
                          subject={"full_name": "Dewi", "district": "61.01"})
    # Sambas police -> Sambas services, about a person from Bengkayang: the subject's region counts
    polres_sambas = await make_party("POLRES-SAMBAS", "61.01", "referrals:write referrals:read", kind=AgencyKind.police)
    about_bengkayang = await create(client, polres_sambas, to_agency="DP3A-SAMBAS",
                                    subject={"full_name": "Ani", "district": "61.07.07"})
    r = await client.get("/v1/referrals", headers=await world.oversight.headers())
    ids = {i["id"] for i in r.json()["items"]}
    assert ids == {bengkayang["id"], about_bengkayang["id"]}
    r = await client.get(f"/v1/referrals/{bengkayang['id']}", headers=await world.oversight.headers())
    assert r.status_code == 200 and len(r.json()["history"]) == 1
    assert_problem(await client.get(f"/v1/referrals/{sambas['id']}", headers=await world.oversight.headers()), 404)
    r = await client.get("/v1/referrals", headers=await world.other_oversight.headers())
    assert {i["id"] for i in r.json()["items"]} == {sambas["id"], about_bengkayang["id"]}
    # oversight reads, it does not move: without a moving scope it is refused before anything
    assert_problem(await move(client, world.oversight, bengkayang, "receive"), 403)


async def test_referred_returnee(client, world, db):
    rid = await add_returnee(db, district="61.01")  # outside the receiver's jurisdiction
    ref = await create(client, world.sender, subject=None, returnee_id=str(rid))
    url = f"/v1/referrals/{ref['id']}/returnee"
    r = await client.get(url, headers=await world.receiver.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == str(rid) and body["full_name"] == "Siti Aminah"
    assert not {"nik", "nik_enc", "passport_number", "phone"} & body.keys()
    async with db.sessionmaker() as s:
        assert (await repository.open_referral_for(s, caller_of(world.receiver, AgencyKind.police), rid)).id == uuid.UUID(
            ref["id"])
        assert await repository.open_referral_for(s, caller_of(world.third, AgencyKind.women_child_protection), rid) is None
        audit_row = (await s.execute(
            sa.select(AuditEvent.body).where(AuditEvent.action == "referral.returnee.read"))).scalar_one()
    assert orjson.loads(audit_row)["detail"]["purpose"] == f"referral:{ref['id']}"
    # the sender and a third agency do not read it through the referral
    assert_problem(await client.get(url, headers=await world.sender.headers()), 404)
    assert_problem(await client.get(url, headers=await world.third.headers()), 404)
    # once the referral is closed, neither does the receiver
    ref = await _walk(client, world.receiver, ref, ["receive", "accept", "start", "complete"])
    assert ref["status"] == "completed"
    assert_problem(await client.get(url, headers=await world.receiver.headers()), 404)
    async with db.sessionmaker() as s:
        assert await repository.open_referral_for(s, caller_of(world.receiver, AgencyKind.police), rid) is None


async def test_receiver_reads_the_referred_returnee_through_the_referral_only(client, world, db, make_party):
    """GET /v1/returnees/{id}: outside its jurisdiction, the receiver of an open referral does
    not read the whole record (address, employer, exploitation details): its 404 points to the
    referral's view, which is what the referral needs; nobody else gets the pointer."""
    rid = await add_returnee(db, district="61.01")
    async with operator_unit(db, "test") as session:
        r = await session.get(Returnee, rid)
        r.address, r.employer, r.exploitation_types = "Jl. Merdeka RT 003", "Ladang Sawit Sdn Bhd", ["forced_labour"]
    receiver = await make_party("POLRES-BENGKAYANG", "61.07", "returnees:read referrals:read referrals:respond",
                                kind=AgencyKind.police)
    bystander = await make_party("DINSOS-BENGKAYANG", "61.07", "returnees:read", kind=AgencyKind.social_services)
    url = f"/v1/returnees/{rid}"
    assert_problem(await client.get(url, headers=await receiver.headers()), 404, "/not-found")  # no referral yet
    ref = await create(client, world.sender, subject=None, returnee_id=str(rid))
    r = await client.get(url, headers=await receiver.headers())
    body = assert_problem(r, 404, "/read-through-referral")
    assert body["referral_returnee"] == f"/v1/referrals/{ref['id']}/returnee" and body["referral_id"] == ref["id"]
    for leaked in ("Siti", "Merdeka", "Ladang", "forced_labour", "61.01"):
        assert leaked not in r.text
    view = await client.get(body["referral_returnee"], headers=await receiver.headers())
    assert view.status_code == 200 and view.json()["full_name"] == "Siti Aminah"
    assert not {"address", "employer", "exploitation_types", "control_methods", "nik", "passport_number",
                "phone"} & view.json().keys()
    async with db.sessionmaker() as s:
        actions = (await s.execute(sa.select(AuditEvent.action, AuditEvent.outcome, AuditEvent.body).where(
            AuditEvent.agency == "POLRES-BENGKAYANG").order_by(AuditEvent.seq))).all()
    assert ("returnee.read", "allowed") not in [(a.action, a.outcome) for a in actions]
    assert orjson.loads(actions[-1].body)["detail"]["purpose"] == f"referral:{ref['id']}"
    body = assert_problem(await client.get(url, headers=await bystander.headers()), 404, "/not-found")
    assert "referral_returnee" not in body
    await _walk(client, receiver, ref, ["receive"])
    r = await move(client, world.sender, await _get(client, world.sender, ref), "cancel")
    assert r.status_code == 200, r.text
    body = assert_problem(await client.get(url, headers=await receiver.headers()), 404, "/not-found")
    assert "referral_returnee" not in body


async def _get(client, party, ref):
    r = await client.get(f"/v1/referrals/{ref['id']}", headers=await party.headers())
    assert r.status_code == 200, r.text
    return r.json()


async def _walk(client, party, ref, actions):
    for action in actions:
        r = await move(client, party, ref, action)
        assert r.status_code == 200, r.text
        ref = r.json()
    return ref


# --- queries -------------------------------------------------------------------------------


async def test_overdue_with_a_controlled_clock(client, world):
    t0 = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    with clock.frozen(t0):
        emergency = await create(client, world.sender, urgency="emergency")  # due 06-02
        normal = await create(client, world.sender, urgency="normal")  # due 06-08
        done = await create(client, world.sender, urgency="emergency")
        done = await _walk(client, world.receiver, done, ["receive"])
        r = await move(client, world.receiver, done, "reject", note="duplicate")
        assert r.status_code == 200
    # one clock: tokens are issued and checked on the same (frozen) clock as the due times
    with clock.frozen(t0 + timedelta(days=3)):
        h = await world.receiver.headers()
        r = await client.get("/v1/referrals", params={"overdue": "true"}, headers=h)
        assert [i["id"] for i in r.json()["items"]] == [emergency["id"]]
        assert r.json()["items"][0]["overdue"] is True
        one = await client.get(f"/v1/referrals/{normal['id']}", headers=h)
        assert one.json()["overdue"] is False
    with clock.frozen(t0 + timedelta(days=8)):
        h = await world.receiver.headers()
        r = await client.get("/v1/referrals", params={"overdue": "true"}, headers=h)
        assert [i["id"] for i in r.json()["items"]] == [emergency["id"], normal["id"]]
        r = await client.get("/v1/referrals", params={"overdue": "false"}, headers=h)
        assert [i["id"] for i in r.json()["items"]] == [done["id"]]


async def test_filters_and_pagination(client, world, make_party):
    polres_sambas = await make_party("POLRES-SAMBAS", "61.01", "referrals:write referrals:read", kind=AgencyKind.police)
    t0 = datetime(2025, 6, 1, tzinfo=UTC)
    made = []
    for i in range(7):
        with clock.frozen(t0 + timedelta(hours=i)):
            made.append(await create(client, world.sender, urgency="high" if i % 2 else "normal",
                                     reason="legal_aid" if i < 3 else "suspected_tppo_victim"))
    received = await create(client, polres_sambas, to_agency="POLRES-BENGKAYANG")
    sent = await create(client, world.receiver, to_agency="DP3A-SAMBAS")
    await _walk(client, world.receiver, made[0], ["receive"])
    h = await world.receiver.headers()

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/v1/referrals", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert len(await ids()) == 9
    assert await ids(role="sent") == [sent["id"]]
    assert len(await ids(role="received")) == 8 and sent["id"] not in await ids(role="received")
    assert await ids(status="received") == [made[0]["id"]]
    assert len(await ids(status="received,requested")) == 9
    r = await client.get("/v1/referrals?status=received&status=requested&role=received", headers=h)
    assert len(r.json()["items"]) == 8
    assert_problem(await client.get("/v1/referrals", params={"status": "nope"}, headers=h), 422)
    assert len(await ids(reason="legal_aid")) == 3
    assert set(await ids(urgency="high")) == {made[i]["id"] for i in (1, 3, 5)}
    assert await ids(updated_since=(t0 + timedelta(hours=5, minutes=30)).isoformat(),
                     role="received", reason="suspected_tppo_victim", sort="created_at") != []
    # keyset pages over every sort, no duplicates, nothing missed
    for sort in ("due_at", "-updated_at", "created_at", "-created_at"):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "sort": sort}
            if cursor:
                params["cursor"] = cursor
            r = await client.get("/v1/referrals", params=params, headers=h)
            assert r.status_code == 200, r.text
            seen += [i["id"] for i in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 9, sort
    created = await ids(sort="created_at", limit=500)
    assert created[:7] == [m["id"] for m in made]
    assert await ids(sort="-created_at", limit=500) == list(reversed(created))
    assert_problem(await client.get("/v1/referrals", params={"cursor": "garbage"}, headers=h), 400)
    assert_problem(await client.get("/v1/referrals", params={"limit": 501}, headers=h), 422)
    assert received["id"] in await ids(role="received")


async def test_list_is_audited(client, world, db):
    ref = await create(client, world.sender)
    await client.get("/v1/referrals", headers=await world.receiver.headers())
    async with db.sessionmaker() as s:
        row = (await s.execute(
            sa.select(AuditEvent.agency).join(AuditSubject, AuditSubject.event_id == AuditEvent.id)
            .where(AuditEvent.action == "referral.list", AuditSubject.resource_id == ref["id"])
        )).scalar_one()
    assert row == "POLRES-BENGKAYANG"


async def test_denied_move_is_audited(client, world, db):
    ref = await create(client, world.sender)
    assert_problem(await move(client, world.sender, ref, "accept"), 409)
    async with db.sessionmaker() as s:
        rows = (await s.execute(
            sa.select(AuditEvent.action, AuditEvent.outcome).where(AuditEvent.agency == "BP3MI-KALBAR")
            .order_by(AuditEvent.seq))).all()
        history = (await s.execute(sa.select(sa.func.count()).select_from(ReferralHistory))).scalar()
    assert ("referral.transition", "failed") in [(a, str(o)) for a, o in rows]
    assert history == 1


# --- demo data -----------------------------------------------------------------------------


async def test_demo_referrals_load_once(db):
    from api.cli import demo_data as demo

    async with operator_unit(db, "test") as s:
        await demo.load_agencies(s)
    out = await demo.load(db)
    assert out["referrals"]["loaded"] >= 30
    again = await demo.load(db)
    assert again["referrals"]["loaded"] == 0
    async with db.sessionmaker() as s:
        rows = (await s.execute(sa.select(Referral.status, Referral.due_at, Referral.returnee_id))).all()
    assert len(rows) == out["referrals"]["loaded"]
    assert {r[0] for r in rows} == {"requested", "received", "accepted", "rejected", "in-progress", "on-hold",
                                    "completed", "failed", "cancelled"}
    now = clock.now()
    assert any(r[0] in ("requested", "received", "accepted", "in-progress", "on-hold") and r[1] < now for r in rows)
    # about the demo returnees (loaded first) and about people described inline
    async with db.sessionmaker() as s:
        returnee_ids = set((await s.execute(sa.select(Returnee.id))).scalars())
    assert any(r[2] in returnee_ids for r in rows) and any(r[2] is None for r in rows)


async def test_referral_events_reach_parties_and_oversight_only(client, world, make_party):
    """The change feed shows a referral's events to the same agencies that may read it."""
    bystander = await make_party("DINSOS-BENGKAYANG", "61.07", "referrals:read events:read",
                                 kind=AgencyKind.social_services)
    feed_scopes = "referrals:read events:read"
    receiver = await make_party("POLRES-BENGKAYANG", "61.07", feed_scopes, kind=AgencyKind.police)
    oversight = await make_party("GUGUS-TPPO-BENGKAYANG", "61.07", feed_scopes, kind=AgencyKind.task_force)
    other_oversight = await make_party("GUGUS-TPPO-SAMBAS", "61.01", feed_scopes, kind=AgencyKind.task_force)
    ref = await create(client, world.sender)

    async def seen(party: Party) -> set[str]:
        r = await client.get("/v1/events", headers=await party.headers())
        assert r.status_code == 200, r.text
        return {e["data"].get("id") for e in r.json()["items"] if e["type"].startswith("referral.")}

    assert ref["id"] in await seen(receiver)
    assert ref["id"] in await seen(oversight)
    assert ref["id"] not in await seen(bystander)
    assert ref["id"] not in await seen(other_oversight)
    # the feed agrees with the resource itself
    r = await client.get(f"/v1/referrals/{ref['id']}", headers=await bystander.headers())
    assert_problem(r, 404)


async def test_subject_phone_is_never_stored_in_clear(client, world, make_party, db, backend):
    """The sender holds pii:read, so its reply shows the phone: the reply kept for its
    Idempotency-Key must not hold it in clear either."""
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read pii:read",
                              kind=AgencyKind.migrant_protection)
    headers = await sender.headers(**{"Idempotency-Key": "ref-phone-1"})
    r = await client.post("/v1/referrals", json=referral_body(), headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["subject"]["phone"] == "+62 812 3456 7890"
    replay = await client.post("/v1/referrals", json=referral_body(), headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == r.json()
    await assert_not_stored(db, backend, ["81234567890", "812 3456 7890"], visible="Deported via PLBN Aruk")


async def test_every_read_of_a_referral_is_on_the_chain_with_its_subject(client, world, db):
    """A read's audit entry and its subject are written with the read's commit (on PostgreSQL
    in the same round trip as the chain append and the COMMIT): each read is one entry, found
    by the referral, and the chain verifies."""
    ref = await create(client, world.sender)
    for _ in range(3):
        r = await client.get(f"/v1/referrals/{ref['id']}", headers=await world.sender.headers())
        assert r.status_code == 200, r.text
    async with db.sessionmaker() as s:
        reads = (await s.execute(
            sa.select(AuditEvent.seq, AuditEvent.agency)
            .join(AuditSubject, AuditSubject.event_id == AuditEvent.id)
            .where(AuditSubject.resource_type == "referral", AuditSubject.resource_id == ref["id"],
                   AuditEvent.action == "referral.read")
        )).all()
    assert len(reads) == 3 and {a for _, a in reads} == {"BP3MI-KALBAR"}
    assert len({seq for seq, _ in reads}) == 3
    assert (await audit.verify(db, "61")).ok
