"""What a reply shows of an NIK, passport or phone number: all of it with ``pii:read``, nothing
of it without (``null`` and ``*_on_file``).

The penetration test rebuilt every masked demo NIK: the mask kept the serial (the last four
digits) and the same reply shows the sub-district, birth date and sex, which are the first
twelve. These tests replay that attack on the demo data, and prove the stronger property that
closes the class: a reply without ``pii:read`` does not change when only the identifiers of the
record change, so nothing in it (no field, no combination of fields) can carry any part of them.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from api.core.context import Caller
from api.core.unit import operator_unit
from api.returnees import service as returnees
from api.returnees.demo import generate
from models import AgencyKind
from tests.conftest import Party
from tests.demo_world import DemoCopy

BENGKAYANG = "61.07"
# What changes when only the identifiers change: the record's version and time of change, and
# its person (one per NIK). Everything else of a reply without pii:read must stay the same.
MOVES_WITH_AN_UPDATE = {"version", "updated_at", "person_id"}


def digits(value: Any) -> str:
    return re.sub(r"\D", "", str(value))


def rebuilt_nik(reply: dict[str, Any]) -> str | None:
    """The penetration test's attack: sub-district digits + DDMMYY (day + 40 for women) from
    the reply's own fields, and the serial from the visible end of its ``nik``."""
    shown, sub, born = reply.get("nik"), reply.get("origin_subdistrict"), reply.get("birth_date")
    if not shown or not sub or not born:
        return None
    serial = digits(shown)[-4:]
    if len(serial) != 4:
        return None
    b = date.fromisoformat(born)
    day = b.day + (40 if reply["sex"] == "F" else 0)
    return f"{digits(sub)}{day:02d}{b:%m%y}{serial}"


def as_party(creds: dict[str, Any], code: str, jurisdiction: str, client: Any) -> Party:
    c = creds[code]
    return Party(code, jurisdiction, c["client_id"], c["client_secret"], c["scopes"].split(), client)


async def read_all(client: Any, party: Party, district: str) -> dict[str, dict[str, Any]]:
    """Every record of ``district`` pushed by the returnees demo, as ``party`` reads it one by
    one (``source_ref`` -> reply). The demo manifests' arrived people (``manifest:...``) are
    masked alike (tests/test_manifests.py) but are not of the generated truth."""
    h = await party.headers()
    listed = await client.get("/v1/returnees", params={"district": district, "limit": 500}, headers=h)
    assert listed.status_code == 200, listed.text
    out = {}
    for item in listed.json()["items"]:
        if item["source_ref"].startswith("manifest:"):
            continue
        r = await client.get(f"/v1/returnees/{item['id']}", headers=h)
        assert r.status_code == 200, r.text
        assert r.json() == item  # the list shows a record as its own read does
        out[item["source_ref"]] = r.json()
    return out


def other_identifiers(record: dict[str, Any]) -> dict[str, Any]:
    """The same record with every identifier it holds replaced by another: a different NIK
    serial (digits 1-12, the part the other fields give away, stay), passport and phone."""
    changed = dict(record)
    if record["nik"]:
        serial = int(record["nik"][-4:])
        changed["nik"] = record["nik"][:12] + f"{serial % 9000 + 5000:04d}"  # demo serials are below 3000
    if record["passport_number"]:
        changed["passport_number"] = record["passport_number"][0] + str(int(record["passport_number"][1:]) // 7 + 1)
    if record["phone"]:
        changed["phone"] = "+627" + digits(record["phone"])[::-1][:9]
    return changed


@pytest.fixture
async def demo_world(demo_copy: DemoCopy, client) -> tuple[Party, Party, list[dict[str, Any]]]:
    """The demo loaded (the test's database is a copy of the demo world: ``demo_copy``); the
    Bengkayang DP3A (no pii:read) and BP3MI (pii:read), and the truth."""
    creds = demo_copy.demo["clients"]
    district = as_party(creds, "DP3A-BENGKAYANG", BENGKAYANG, client)
    bp3mi = as_party(creds, "BP3MI-KALBAR", "61", client)
    assert "pii:read" not in district.scopes and "pii:read" in bp3mi.scopes
    truth = [r for r in generate() if r["origin_district"] == BENGKAYANG]
    return district, bp3mi, truth


async def test_no_demo_record_read_without_pii_read_gives_back_an_identifier(client, db, demo_world):
    district, _, truth = demo_world
    seen = await read_all(client, district, BENGKAYANG)
    assert set(seen) == {r["source_ref"] for r in truth}
    with_nik = [r for r in truth if r["nik"]]
    assert len(with_nik) == 219  # the records the penetration test rebuilt
    assert sum(1 for r in truth if r["passport_number"]) > 100 and sum(1 for r in truth if r["phone"]) > 150

    # the attack, checked on the old mask (so that it is a real attack): it rebuilt every NIK
    old_style = {r["source_ref"]: {**seen[r["source_ref"]], "nik": "*" * 12 + r["nik"][-4:]} for r in with_nik}
    assert all(rebuilt_nik(old_style[r["source_ref"]]) == r["nik"] for r in with_nik)

    for record in truth:
        reply = seen[record["source_ref"]]
        assert reply["pii_masked"] is True
        assert reply["nik"] is None and reply["passport_number"] is None and reply["phone"] is None
        assert reply["nik_on_file"] is bool(record["nik"])
        assert reply["passport_on_file"] is bool(record["passport_number"])
        assert reply["phone_on_file"] is bool(record["phone"])
        assert rebuilt_nik(reply) is None  # the attack recovers nothing
        everything = digits(reply)  # every field's digits, run together
        for value in (record["nik"], record["passport_number"], record["phone"]):
            if value:
                assert digits(value) not in everything, (record["source_ref"], value)
        # Four digits alone (the serial) do turn up in other fields by chance (sub-district
        # 61.07.07 and serial 0707): that no field holds them *because of* the NIK is shown by
        # the next test, which changes only the identifiers and finds every reply unchanged.


async def test_a_reply_without_pii_read_does_not_change_with_the_identifiers(client, db, demo_world):
    """Push every Bengkayang demo record again with only its identifiers changed: the district's
    replies are the same but for the version, the time of change and the person (a new NIK is
    another person). So no field of them, nor any combination, depends on an identifier."""
    district, _, truth = demo_world
    before = await read_all(client, district, BENGKAYANG)
    writer = Caller(client_id="demo-bp3mi-kalbar", agency="BP3MI-KALBAR", agency_kind=AgencyKind.migrant_protection,
                    jurisdiction="61", scopes=frozenset({"returnees:write"}), token_id="test")
    changed = [other_identifiers(r) for r in truth]
    async with operator_unit(db, "test") as session:
        outcome = await returnees.upsert_batch(session, writer, changed)
    assert outcome.counts["updated"] == sum(1 for r in truth if r["nik"] or r["passport_number"] or r["phone"])
    after = await read_all(client, district, BENGKAYANG)
    for ref, old in before.items():
        new = after[ref]
        assert {k: v for k, v in new.items() if k not in MOVES_WITH_AN_UPDATE} == {
            k: v for k, v in old.items() if k not in MOVES_WITH_AN_UPDATE}, ref


async def test_with_pii_read_the_values_are_shown(client, db, demo_world):
    _, bp3mi, truth = demo_world
    seen = await read_all(client, bp3mi, BENGKAYANG)
    for record in truth:
        reply = seen[record["source_ref"]]
        assert reply["pii_masked"] is False
        assert reply["nik"] == record["nik"] and reply["nik_on_file"] is bool(record["nik"])
        assert reply["passport_number"] == record["passport_number"]
        assert reply["phone"] == record["phone"]


async def test_batch_reply_of_a_writer_without_pii_read_holds_no_identifier(client, make_party):
    writer = await make_party("BP3MI-KALBAR", "61", "returnees:write returnees:read",
                              kind=AgencyKind.migrant_protection)
    record = {"source_ref": "MK-1", "full_name": "Siti Aminah", "nik": "6107074505900001", "sex": "M",
              "birth_date": "1990-05-06", "origin_district": "61.07", "passport_number": "C1234567",
              "phone": "+6281234567890", "return_type": "deported", "return_date": "2025-03-14"}
    r = await client.post("/v1/returnees/batch", json={"records": [record]}, headers=await writer.headers())
    assert r.status_code == 200, r.text
    result = r.json()["results"][0]
    assert result["status"] == "created" and len(result["warnings"]) == 2  # sex and birth date disagree
    for value in ("6107074505900001", "0001", "1234567", "81234567890", "4567", "7890"):
        assert value not in r.text
    got = (await client.get(f"/v1/returnees/{result['id']}", headers=await writer.headers())).json()
    assert got["nik"] is None and got["nik_on_file"] is True and got["pii_masked"] is True


async def test_referral_subject_phone_is_shown_only_with_pii_read(client, make_party):
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read pii:read",
                              kind=AgencyKind.migrant_protection)
    receiver = await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond",
                                kind=AgencyKind.police)
    body = {"to_agency": "POLRES-BENGKAYANG", "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51",
            "subject": {"full_name": "Rina", "district": "61.07.07", "phone": "+62 812 3456 7890"},
            "processing_basis": "vital_interest"}
    r = await client.post("/v1/referrals", json=body, headers=await sender.headers())
    assert r.status_code == 201, r.text
    assert r.json()["subject"]["phone"] == "+62 812 3456 7890" and r.json()["subject"]["phone_on_file"] is True
    h = await receiver.headers()
    one = await client.get(f"/v1/referrals/{r.json()['id']}", headers=h)
    listed = await client.get("/v1/referrals", headers=h)
    for reply, subject in ((one, one.json()["subject"]), (listed, listed.json()["items"][0]["subject"])):
        assert reply.status_code == 200
        assert subject["phone"] is None and subject["phone_on_file"] is True
        assert "812 3456 7890" not in reply.text and "81234567890" not in digits(reply.text)
    no_phone = await client.post("/v1/referrals", json={**body, "subject": {"full_name": "Ani"}},
                                 headers=await sender.headers())
    assert no_phone.json()["subject"]["phone"] is None and no_phone.json()["subject"]["phone_on_file"] is False


def test_identifiers_are_never_partly_shown_by_the_kernel():
    """The one helper that shapes an identifier for a reply: whole or nothing."""
    from api.core import crypto
    from api.core.settings import Settings

    key = Settings(mode="development").data_key_bytes
    token = crypto.encrypt("6107074505900001", context="returnee.nik", key=key)
    assert crypto.disclose(token, pii=True, context="returnee.nik", key=key) == ("6107074505900001", True)
    assert crypto.disclose(token, pii=False, context="returnee.nik", key=key) == (None, True)
    assert crypto.disclose(None, pii=True, context="returnee.nik", key=key) == (None, False)
    assert not hasattr(crypto, "mask")  # the partial mask is gone, not merely unused
