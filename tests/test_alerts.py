"""Recruitment alerts (issue 11, item 4), on the demo data: an identifier reported by k distinct
agencies alerts exactly the agencies that may see it (police and task force over the places),
the public warning list holds no personal data, and another jurisdiction sees nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.agencies import service as agencies
from api.agencies.schemas import AgencyCreate, ClientCreate
from api.alerts import demo as alerts_demo
from api.alerts.schemas import normalised_identifier
from api.app import create_app
from api.cli.demo_data import AGENCIES
from api.core.unit import operator_unit
from api.register import demo as register_demo
from api.returnees import demo as returnee_demo
from models import AgencyKind, IdentifierKind, Returnee
from tests.demo_world import DemoCopy
from tests.reply_shapes import CheckReplies
from tests.test_register import World, _all_events


@pytest.fixture(scope="module")
async def world(module_demo: DemoCopy) -> AsyncIterator[World]:
    settings, demo = module_demo.settings, module_demo.demo
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        checked = CheckReplies(app)
        transport = httpx.ASGITransport(app=checked, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            db = app.state.services.db
            async with operator_unit(db, "test") as session:  # the police of another district
                await agencies.create_agency(session, AgencyCreate(
                    code="POLRES-SAMBAS", name="Polres Sambas", kind=AgencyKind.police, jurisdiction="61.01"))
                extra = await agencies.create_client(session, "POLRES-SAMBAS", ClientCreate(
                    scopes=["alerts:read", "alerts:write", "events:read"]))
            clients = {code: (c["client_id"], c["client_secret"]) for code, c in demo["clients"].items()}
            clients["POLRES-SAMBAS"] = (extra.client_id, extra.client_secret)
            tokens = {}
            for code, auth in clients.items():
                r = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
                tokens[code] = r.json()["access_token"]
            yield World(http, db, tokens)
        assert not checked.mismatches, checked.mismatches


def _report(modus: str, region: str, phone: str) -> dict[str, Any]:
    return {"modus": modus, "region": region, "route": [region], "destination_country": "MY",
            "identifiers": [{"kind": "phone", "value": phone}]}


async def _raised(world: World, who: str) -> list[dict[str, Any]]:
    return [e for e in await _all_events(world, who) if e["type"].startswith("alert.")]


async def test_k_sources_alert_exactly_the_agencies_that_may_see_it(world: World) -> None:
    phone = "0857 1111 2222"
    readers = ["BP3MI-KALBAR", "POLRES-BENGKAYANG", "DP3A-BENGKAYANG", "DINSOS-BENGKAYANG",
               "GUGUS-TPPO-BENGKAYANG", "DP3A-SAMBAS", "POLRES-SAMBAS"]
    before = {who: len(await _raised(world, who)) for who in readers}
    post = world.http.post
    r = await post("/v1/alerts/reports", json=_report("debt_bondage", "61.07.03", phone),
                   headers=world.bearer("DINSOS-BENGKAYANG"))
    assert r.status_code == 201, r.text
    assert r.json()["identifier_kinds"] == ["phone"] and phone not in r.text
    # the same agency again is not a second source
    await post("/v1/alerts/reports", json=_report("debt_bondage", "61.07.03", "+62 857-1111-2222"),
               headers=world.bearer("DINSOS-BENGKAYANG"))
    assert {who: len(await _raised(world, who)) for who in readers} == before
    # a second agency, writing the number otherwise: the alert, to Bengkayang's police and task force only
    r = await post("/v1/alerts/reports", json=_report("debt_bondage", "61.07.03", "+6285711112222"),
                   headers=world.bearer("DP3A-BENGKAYANG"))
    assert r.status_code == 201, r.text
    after = {who: len(await _raised(world, who)) for who in readers}
    alerted = {who for who in readers if after[who] > before[who]}
    expected = {a["code"] for a in AGENCIES if a["kind"] in (AgencyKind.police, AgencyKind.task_force)
                and "61.07.03".startswith(a["jurisdiction"])}
    assert alerted == expected == {"POLRES-BENGKAYANG", "GUGUS-TPPO-BENGKAYANG"}
    event = (await _raised(world, "POLRES-BENGKAYANG"))[-1]
    assert event["type"] == "alert.raised" and event["data"]["sources"] == 2 and phone not in str(event)
    alert_id = event["data"]["id"]
    got = await world.http.get(f"/v1/alerts/{alert_id}", headers=world.bearer("GUGUS-TPPO-BENGKAYANG"))
    assert got.status_code == 200, got.text
    alert = got.json()
    assert alert["reporting_agencies"] == ["DINSOS-BENGKAYANG", "DP3A-BENGKAYANG"] and alert["reports"] == 3
    assert alert["value"] is None and alert["value_on_file"]  # no pii:read
    # the police of another district: not in its view
    other = await world.http.get(f"/v1/alerts/{alert_id}", headers=world.bearer("POLRES-SAMBAS"))
    assert other.status_code == 404
    listed = await world.http.get("/v1/alerts", headers=world.bearer("POLRES-SAMBAS"))
    assert listed.status_code == 200 and listed.json()["items"] == []
    # a third source updates the alert, to the same agencies
    await post("/v1/alerts/reports", json=_report("debt_bondage", "61.07.03", phone), headers=world.bearer("BP3MI-KALBAR"))
    assert (await _raised(world, "POLRES-BENGKAYANG"))[-1]["type"] == "alert.updated"
    assert len(await _raised(world, "POLRES-SAMBAS")) == before["POLRES-SAMBAS"]


async def test_the_demo_alerts_and_the_returnees_who_named_the_recruiter(world: World) -> None:
    items = (await world.http.get("/v1/alerts", headers=world.bearer("POLRES-BENGKAYANG"))).json()["items"]
    demo = {(a["kind"], tuple(a["regions"])) for a in items}
    assert {("phone", ("61.07.07",)), ("social_media", ("61.07.05",))} <= demo
    job = next(a for a in items if a["regions"] == ["61.07.07"] and a["kind"] == "phone")
    assert job["sources"] == 2 and job["modus"] == ["fake_job_offer_social_media"] and job["named_by"]


async def test_a_report_names_only_returnees_in_the_reporters_view(world: World) -> None:
    async with world.db.read() as conn:
        bky = (await conn.execute(sa.select(Returnee.id).where(Returnee.origin_district == "61.07").limit(1))).scalar_one()
    body = {**_report("other", "61.01.01", "0811 000 111"), "named_by": [{"returnee_id": str(bky)}]}
    r = await world.http.post("/v1/alerts/reports", json=body, headers=world.bearer("DP3A-SAMBAS"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "named_by.0.returnee_id", r.text
    r = await world.http.post("/v1/alerts/reports", json=_report("other", "61.07.07", "0811 000 111"),
                              headers=world.bearer("DP3A-SAMBAS"))
    assert r.status_code == 403 and r.json()["type"].endswith("outside-jurisdiction")


async def test_the_public_warning_list_holds_no_personal_data(world: World) -> None:
    r = await world.http.get("/v1/public/warnings")
    assert r.status_code == 200, r.text
    text = r.text
    items = r.json()["items"]
    assert {(w["modus"], w["region"]["code"]) for w in items} >= {
        ("fake_job_offer_social_media", "61.07.07"), ("fake_job_offer_social_media", "61.07.05"),
        ("debt_bondage", "61.07.06")}
    assert ("visa_free_border_entry", "61.01.01") not in {(w["modus"], w["region"]["code"]) for w in items}
    assert all(w["description"] for w in items)
    forbidden = set(alerts_demo.IDENTIFIERS)
    for kind, value in ((IdentifierKind.phone, alerts_demo.PHONE_JOB_OFFER), (IdentifierKind.phone, alerts_demo.PHONE_SINGLE),
                        (IdentifierKind.social_media, alerts_demo.HANDLE),
                        (IdentifierKind.vehicle_plate, alerts_demo.PLATE)):
        forbidden.add(normalised_identifier(kind, value))
    forbidden.add("loker_sarawak_resmi")
    forbidden |= {spec["place_note"] for _, spec in alerts_demo.REPORTS if spec.get("place_note")}
    for rec in returnee_demo.generate():
        forbidden |= {rec["full_name"], *(v for v in (rec["nik"], rec["phone"], rec["passport_number"]) if v)}
    for recs in register_demo.generate().values():
        forbidden |= {rec["full_name"] for rec in recs} | {rec["nik"] for rec in recs if rec.get("nik")}
    leaked = sorted(v for v in forbidden if v and v in text)
    assert not leaked, leaked
    assert "person" not in text and "returnee" not in text and "agency" not in text
