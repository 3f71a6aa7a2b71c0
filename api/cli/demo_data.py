"""Demo data: the agencies of the design's table with clients of their typical scopes.

Safe to run again: existing agencies are kept, and each demo client gets a fresh secret (a
secret is stored only as a hash, so printing the credentials means issuing new ones). Later
parts of the demo (records) are the loaders of :func:`loaders`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, crypto
from api.core.db import Database
from api.core.settings import get_settings
from api.core.unit import operator_unit
from models import Agency, AgencyKind, ApiClient

AGENCIES: list[dict[str, Any]] = [
    {"code": "BP3MI-KALBAR", "name": "BP3MI Kalimantan Barat", "kind": AgencyKind.migrant_protection,
     "jurisdiction": "61",
     "scopes": "returnees:write returnees:read pii:read notices:write notices:read referrals:write referrals:read events:read "
               "manifests:write manifests:read webhooks:manage register:write register:read alerts:write"},
    {"code": "POLRES-BENGKAYANG", "name": "Polres Bengkayang", "kind": AgencyKind.police, "jurisdiction": "61.07",
     "scopes": "referrals:read referrals:write referrals:respond returnees:read events:read webhooks:manage alerts:write "
               "alerts:read"},
    {"code": "DP3A-KALBAR", "name": "DP3A Provinsi Kalimantan Barat", "kind": AgencyKind.women_child_protection,
     "jurisdiction": "61", "scopes": "stats:read notices:read manifests:read"},
    {"code": "DP3A-BENGKAYANG", "name": "DP3A Kabupaten Bengkayang", "kind": AgencyKind.women_child_protection,
     "jurisdiction": "61.07",
     "scopes": "notices:read notices:ack referrals:read referrals:write referrals:respond returnees:read events:read "
               "manifests:read manifests:locate register:write register:read alerts:write officers:manage"},
    {"code": "DINSOS-BENGKAYANG", "name": "Dinas Sosial Kabupaten Bengkayang", "kind": AgencyKind.social_services,
     "jurisdiction": "61.07",
     "scopes": "notices:read notices:ack referrals:read referrals:write referrals:respond returnees:read events:read "
               "register:read alerts:write"},
    {"code": "GUGUS-TPPO-BENGKAYANG", "name": "Gugus Tugas TPPO Kabupaten Bengkayang", "kind": AgencyKind.task_force,
     "jurisdiction": "61.07", "scopes": "referrals:read stats:read events:read register:read alerts:read"},
    {"code": "INSPEKTORAT-KALBAR", "name": "Inspektorat Provinsi Kalimantan Barat", "kind": AgencyKind.inspectorate,
     "jurisdiction": "61", "scopes": "audit:read"},
    {"code": "DP3A-SAMBAS", "name": "DP3A Kabupaten Sambas", "kind": AgencyKind.women_child_protection,
     "jurisdiction": "61.01",
     "scopes": "notices:read notices:ack referrals:read referrals:respond returnees:read events:read "
               "manifests:read manifests:locate register:read register:write alerts:write"},
    {"code": "SINERGI-OPERATOR", "name": "Sinergi operator", "kind": AgencyKind.operator, "jurisdiction": "61",
     "scopes": "admin"},
]

Loader = Callable[[AsyncSession], Awaitable[dict[str, Any] | None]]


def loaders() -> list[Loader]:
    """The record loaders, in order: notices are raised for the returnees loaded before them,
    referrals are about those returnees; the manifests raise their own notices; departures and
    recruitment reports last. (The officers, people who sign in to the console, are loaded by
    :func:`load` after them, with the passwords of an earlier run.)"""
    from api.alerts.demo import load_alerts
    from api.manifests.demo import load_manifests
    from api.notices.demo import load_notices
    from api.referrals.demo import load_referrals
    from api.register.demo import load_departures
    from api.returnees.demo import load_returnees

    return [load_returnees, load_notices, load_referrals, load_manifests, load_departures, load_alerts]


def demo_client_id(code: str) -> str:
    return f"demo-{code.lower()}"


async def load_agencies(session: AsyncSession, known: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """The demo agencies and their clients. A client whose secret is in ``known`` (an earlier
    run's credentials) and still opens it, with the demo's scopes and enabled, is left as it is;
    any other gets a new secret. Audited only when something changed."""
    creds: dict[str, dict[str, str]] = {}
    changed = False
    for spec in AGENCIES:
        agency = await session.get(Agency, spec["code"])
        if agency is None:
            agency = Agency(code=spec["code"], name=spec["name"], kind=spec["kind"], jurisdiction=spec["jurisdiction"])
            session.add(agency)
            await session.flush()
            changed = True
        cid = demo_client_id(spec["code"])
        client = await session.get(ApiClient, cid)
        old = (known or {}).get(spec["code"], {})
        if (client is not None and old.get("client_id") == cid and client.disabled_at is None
                and client.scopes == spec["scopes"] and crypto.secret_matches(old["client_secret"], client.secret_hash)):
            creds[spec["code"]] = {"client_id": cid, "client_secret": old["client_secret"], "scopes": spec["scopes"]}
            continue
        changed = True
        secret = "sk_demo_" + secrets.token_urlsafe(24)
        if client is None:
            client = ApiClient(client_id=cid, agency_code=agency.code, name="demo", scopes=spec["scopes"],
                               secret_hash=crypto.hash_secret(secret))
        else:
            client.secret_hash = crypto.hash_secret(secret)
            client.scopes = spec["scopes"]
            client.disabled_at = None
        session.add(client)
        creds[spec["code"]] = {"client_id": cid, "client_secret": secret, "scopes": spec["scopes"]}
    if changed:
        audit.record(session, "demo.load", resource_type="agency", subjects=[("agency", a["code"]) for a in AGENCIES])
    return creds


async def load(db: Database, known: dict[str, dict[str, str]] | None = None,
               known_officers: dict[str, str] | None = None) -> dict[str, Any]:
    """Load (or complete) the demo; ``known``/``known_officers``: the secrets and passwords of
    an earlier run's credentials file, kept while they still sign in."""
    from api.officers.demo import load_officers  # deferred as the loaders are: the CLI loads it on demand

    if get_settings().mode == "production":
        raise SystemExit("refusing to load demo data in production mode")
    async with operator_unit(db, "demo") as session:
        creds = await load_agencies(session, known)
    out: dict[str, Any] = {"clients": creds}
    for loader in loaders():
        async with operator_unit(db, "demo") as session:
            extra = await loader(session)
        if extra:
            out.update(extra)
    async with operator_unit(db, "demo") as session:
        out.update(await load_officers(session, known_officers))
    return out

