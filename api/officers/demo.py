"""Demo officers: one or two people per agency that has a console to use."""

from __future__ import annotations

import secrets
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit
from api.officers.schemas import OfficerCreate
from api.officers.service import create_officer, hash_password, password_matches
from models import Officer

OFFICERS: list[dict[str, Any]] = [
    {"agency": "DP3A-KALBAR", "email": "analis@dp3a.kalbarprov.go.id", "name": "Analis DP3A Provinsi",
     "scopes": ["stats:read", "notices:read"]},
    {"agency": "DP3A-BENGKAYANG", "email": "petugas@dp3a.bengkayangkab.go.id", "name": "Petugas DP3A Bengkayang",
     "scopes": ["notices:read", "notices:ack", "referrals:read", "referrals:respond", "returnees:read",
                "manifests:read", "manifests:locate"]},
    # the district office's administrator: manages its officers in the console (/console/petugas)
    # and grants them what it holds itself (a manager grants no scope it does not hold)
    {"agency": "DP3A-BENGKAYANG", "email": "admin@dp3a.bengkayangkab.go.id", "name": "Admin DP3A Bengkayang",
     "scopes": ["officers:manage", "notices:read", "notices:ack", "referrals:read", "referrals:respond",
                "returnees:read", "manifests:read", "manifests:locate"]},
    {"agency": "DP3A-SAMBAS", "email": "petugas@dp3a.sambas.go.id", "name": "Petugas DP3A Sambas",
     "scopes": ["notices:read", "notices:ack", "referrals:read", "referrals:respond", "returnees:read",
                "manifests:read", "manifests:locate"]},
    {"agency": "POLRES-BENGKAYANG", "email": "ppa@polres-bengkayang.polri.go.id", "name": "Unit PPA Polres Bengkayang",
     "scopes": ["referrals:read", "referrals:respond", "returnees:read"]},
    {"agency": "GUGUS-TPPO-BENGKAYANG", "email": "sekretariat@gugustppo.bengkayangkab.go.id",
     "name": "Sekretariat Gugus Tugas", "scopes": ["stats:read", "referrals:read"]},
    {"agency": "INSPEKTORAT-KALBAR", "email": "auditor@inspektorat.kalbarprov.go.id", "name": "Auditor Inspektorat",
     "scopes": ["audit:read"]},
]


async def load_officers(session: AsyncSession, known: dict[str, str] | None = None) -> dict[str, Any]:
    """Safe to run again: an existing demo officer keeps the password of ``known`` (an earlier
    run's credentials file, ``email -> password``) while it still signs in with it; otherwise it
    gets a fresh one (only its hash is kept), and a disabled or reset account works again."""
    known = known or {}
    out: dict[str, dict[str, Any]] = {}
    changed = False
    for spec in OFFICERS:
        existing = (await session.exec(select(Officer).where(col(Officer.email) == spec["email"]))).first()
        password = known.get(spec["email"])
        if (existing is not None and password is not None and existing.disabled_at is None
                and not existing.password_must_change and password_matches(existing.password_hash, password)):
            out[spec["email"]] = {"agency": spec["agency"], "password": password, "scopes": " ".join(spec["scopes"])}
            continue
        changed = True
        password = "demo-" + secrets.token_urlsafe(12)
        if existing is None:
            await create_officer(session, spec["agency"], OfficerCreate(
                email=spec["email"], name=spec["name"], scopes=spec["scopes"], password=password))
        else:
            existing.password_hash = hash_password(password)
            existing.failed_attempts, existing.locked_until = 0, None
            existing.password_must_change, existing.disabled_at = False, None
            session.add(existing)
        out[spec["email"]] = {"agency": spec["agency"], "password": password, "scopes": " ".join(spec["scopes"])}
    await session.flush()
    if changed:
        audit.record(session, "demo.officers", resource_type="officer")
    return {"officers": out}
