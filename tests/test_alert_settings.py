"""The settings of recruitment alerts: the number of independent sources that raises an alert
(``SINERGI_ALERT_THRESHOLD``) and the per-address limit of the public warning list
(``SINERGI_RATE_PUBLIC``), on an app of their own."""

from __future__ import annotations

import pytest

from api.core.settings import Settings
from models import AgencyKind


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, mode="development", db_pool_size=10, alert_threshold=3,
                    rate_public=3)


def _report(phone: str) -> dict[str, object]:
    return {"modus": "marriage_offer", "region": "61.07.12", "identifiers": [{"kind": "phone", "value": phone}]}


async def test_an_alert_needs_the_configured_number_of_sources(client, make_party) -> None:
    police = await make_party("POLRES-BENGKAYANG", "61.07", ["alerts:read", "events:read"], kind=AgencyKind.police)
    reporters = [await make_party(code, "61.07", ["alerts:write"], kind=AgencyKind.social_services)
                 for code in ("DINSOS-BENGKAYANG", "DP3A-BENGKAYANG", "PUSKESMAS-SIDING")]
    seen = []
    for reporter in reporters:
        r = await client.post("/v1/alerts/reports", json=_report("0813 4455 6677"), headers=await reporter.headers())
        assert r.status_code == 201, r.text
        alerts = await client.get("/v1/alerts", headers=await police.headers())
        seen.append(len(alerts.json()["items"]))
    assert seen == [0, 0, 1]
    events = (await client.get("/v1/events", headers=await police.headers())).json()["items"]
    assert [e["type"] for e in events if e["type"].startswith("alert.")] == ["alert.raised"]
    public = (await client.get("/v1/public/warnings")).json()["items"]
    assert [(w["modus"], w["region"]["code"], w["region"]["name"]) for w in public] == [
        ("marriage_offer", "61.07.12", "Siding")]


async def test_the_public_list_is_limited_per_address(client) -> None:
    statuses = [(await client.get("/v1/public/warnings")).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = await client.get("/v1/public/warnings")
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["retry-after"]) >= 1
