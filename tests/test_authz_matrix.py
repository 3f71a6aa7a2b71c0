"""The authorisation matrix: every route of the app × every demo agency's token, and no token.

:data:`MATRIX` is the one table of who gets what: one row per route (its name, as
``app.routes`` has it), one column per caller (:data:`COLUMNS`: no token, then each agency of
:data:`api.cli.demo_data.AGENCIES` with the scopes the demo gives it). Every cell is a real
request against the demo data of a database of this module, with path parameters naming real
objects that lie in the jurisdiction of some agencies and not of others (:func:`call_for`
says which), and with valid bodies, so that a success is reachable. A write's cell makes its
own target (a fresh notice to acknowledge, a fresh referral to move, a fresh client to
disable, ...), so no cell depends on the order of the others.

A route the table does not know fails the suite (:func:`test_every_route_has_a_row`); so does
a demo agency without a column. When a rule changes, edit the cell: a failing row prints
itself as observed, ready to paste.

Errors must be problem+json everywhere except at ``/oauth/token`` and ``/oauth/revoke``,
whose errors follow RFC 6749 §5.2 (API.md).

The write-jurisdiction rules (issue 8, item 4; ``api.core.access.may_write``) are
:data:`WRITE_JURISDICTION` below, with their own test.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import iter_route_contexts

from api.agencies import service as agencies
from api.agencies.schemas import AgencyCreate, ClientCreate
from api.app import create_app
from api.cli.demo_data import AGENCIES
from api.core import clock
from api.core.db import Database
from api.core.unit import operator_unit
from api.manifests.demo import EXPECTED_LETTER
from api.officers import service as officers
from api.officers.schemas import OfficerCreate
from models import (
    AgencyKind,
    DeliveryStatus,
    Manifest,
    ManifestPerson,
    Notice,
    NoticeReturnee,
    Officer,
    RecruitmentAlert,
    RegisterPerson,
    Returnee,
    WebhookDelivery,
)
from tests.demo_world import DemoCopy
from tests.reply_shapes import CheckReplies

NONE = "none"  # the column of a request without any token

# The columns, in the order of the rows below. The agencies are those of the demo, in its order.
COLUMNS: tuple[str, ...] = (
    NONE,
    "BP3MI-KALBAR",           # province 61, border intake: returnees/notices/referrals write, pii:read, webhooks:manage
    "POLRES-BENGKAYANG",      # district 61.07, police: referrals read/write/respond, returnees:read, webhooks:manage
    "DP3A-KALBAR",            # province 61: stats:read notices:read (so the register's counts too)
    "DP3A-BENGKAYANG",        # district 61.07: notices read/ack, referrals read/write/respond, returnees:read
    "DINSOS-BENGKAYANG",      # district 61.07: the same scopes as DP3A-BENGKAYANG
    "GUGUS-TPPO-BENGKAYANG",  # district 61.07, task force (oversight): referrals:read stats:read events:read
    "INSPEKTORAT-KALBAR",     # province 61, inspectorate: audit:read
    "DP3A-SAMBAS",            # district 61.01: notices read/ack, referrals read/respond, returnees:read
    "SINERGI-OPERATOR",       # the operator: admin
)

# The targets of the rows with a path parameter (see call_for):
#   returnee.get          a returnee of Bengkayang (61.07), pushed by BP3MI
#   notice.*              a notice to Bengkayang issued by BP3MI (acknowledge: a fresh one per cell)
#   referral.get/returnee a referral BP3MI -> POLRES-BENGKAYANG about that returnee, open
#   referral.transition   a fresh such referral per cell, action "receive" (the receiver's first move)
#   client.*              a spare agency of the test / a fresh client of it per cell
#   webhook.*             a subscription of BP3MI (to a closed port) with one delivery; delete: a fresh one per cell
#   manifest.get/person   the demo manifest expected this week (people of Bengkayang and Melawi),
#                         one of its Bengkayang people
#   manifest.arrivals     a fresh manifest per cell (one person of Bengkayang), with its ETag
#   manifest.locate       a fresh manifest per cell whose Bengkayang person arrived, with its ETag
#   officer.*             DP3A-SAMBAS's officers: its demo officer (get), a fresh one per cell (changes)
#
# fmt: off
MATRIX: dict[str, tuple[int, ...]] = {
    #                      none BP3MI POLRES DP3A-K DP3A-B DINSOS GUGUS INSP SAMBAS OPER
    "healthz":             (200, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    "readyz":              (200, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    "metrics":             (200, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    "jwks":                (200, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    "oauth.metadata":      (200, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    # the oauth endpoints authenticate the client itself (its own credentials, not a token)
    "token.issue":         (401, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    "token.revoke":        (401, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    "agency.create":       (401, 403,  403,   403,   403,   403,   403,  403, 403,   201),
    "agency.list":         (401, 403,  403,   403,   403,   403,   403,  403, 403,   200),
    "client.create":       (401, 403,  403,   403,   403,   403,   403,  403, 403,   201),
    "client.disable":      (401, 403,  403,   403,   403,   403,   403,  403, 403,   200),
    "audit.list":          (401, 403,  403,   403,   403,   403,   403,  200, 403,   403),
    "audit.verify":        (401, 403,  403,   403,   403,   403,   403,  200, 403,   403),
    "audit.checkpoint":    (401, 403,  403,   403,   403,   403,   403,  200, 403,   403),
    "returnee.batch":      (401, 200,  403,   403,   403,   403,   403,  403, 403,   403),
    "returnee.list":       (401, 200,  200,   403,   200,   200,   403,  403, 200,   403),
    "returnee.get":        (401, 200,  200,   403,   200,   200,   403,  403, 404,   403),
    "notice.create":       (401, 201,  403,   403,   403,   403,   403,  403, 403,   403),
    "notice.list":         (401, 200,  403,   200,   200,   200,   403,  403, 200,   403),
    "notice.get":          (401, 200,  403,   200,   200,   200,   403,  403, 404,   403),
    "notice.acknowledge":  (401, 403,  403,   403,   200,   200,   403,  403, 404,   403),
    "notice.follow_up":    (401, 403,  403,   403,   201,   201,   403,  403, 404,   403),
    "referral.create":     (401, 201,  201,   403,   201,   201,   403,  403, 403,   403),
    "referral.list":       (401, 200,  200,   403,   200,   200,   200,  403, 200,   403),
    "referral.get":        (401, 200,  200,   403,   404,   404,   200,  403, 404,   403),
    # BP3MI is the sender: "receive" is not its move (409); the others are no party (404)
    "referral.transition": (401, 409,  200,   403,   404,   404,   403,  403, 404,   403),
    "referral.returnee":   (401, 404,  200,   403,   404,   404,   404,  403, 404,   403),
    "stats.returnees":     (401, 403,  403,   200,   403,   403,   200,  403, 403,   403),
    "stats.referrals":     (401, 403,  403,   200,   403,   403,   200,  403, 403,   403),
    "event.list":          (401, 200,  200,   403,   200,   200,   200,  403, 200,   403),
    # webhooks: BP3MI and Polres hold webhooks:manage; a subscription is its agency's (BP3MI's here)
    "webhook.create":      (401, 201,  201,   403,   403,   403,   403,  403, 403,   403),
    "webhook.list":        (401, 200,  200,   403,   403,   403,   403,  403, 403,   403),
    "webhook.get":         (401, 200,  404,   403,   403,   403,   403,  403, 403,   403),
    "webhook.delete":      (401, 200,  404,   403,   403,   403,   403,  403, 403,   403),
    "webhook.enable":      (401, 200,  404,   403,   403,   403,   403,  403, 403,   403),
    "webhook.deliveries":  (401, 200,  404,   403,   403,   403,   403,  403, 403,   403),
    "webhook.redeliver":   (401, 202,  404,   403,   403,   403,   403,  403, 403,   403),
    # reference data: any valid token
    "region.list":         (401, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    "region.get":          (401, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    # manifests: BP3MI registers and marks arrivals; the province reads; a district reads and
    # locates its own people (the target lists people of Bengkayang and Melawi: Sambas gets 404)
    "manifest.create":     (401, 201,  403,   403,   403,   403,   403,  403, 403,   403),
    "manifest.list":       (401, 200,  403,   200,   200,   403,   403,  403, 200,   403),
    "manifest.week":       (401, 200,  403,   200,   200,   403,   403,  403, 200,   403),
    "manifest.get":        (401, 200,  403,   200,   200,   403,   403,  403, 404,   403),
    "manifest.person":     (401, 200,  403,   200,   200,   403,   403,  403, 404,   403),
    "manifest.arrivals":   (401, 200,  403,   403,   403,   403,   403,  403, 403,   403),
    "manifest.locate":     (401, 403,  403,   403,   200,   403,   403,  403, 404,   403),
    # the register: per-record results (a record outside the writer's region is rejected alone)
    "departure.batch":     (401, 200,  403,   403,   200,   403,   403,  403, 200,   403),
    "register.person.list": (401, 200, 403,   403,   200,   200,   200,  403, 200,   403),
    "register.person.get": (401, 200,  403,   403,   200,   200,   200,  403, 404,   403),
    "register.counts":     (401, 200,  403,   200,   200,   200,   200,  403, 200,   403),
    # a report of Bengkayang: Sambas may not write for it (403 outside-jurisdiction)
    "recruitment.report.create": (401, 201, 201, 403, 201,   201,   403,  403, 403,   403),
    "alert.list":          (401, 403,  200,   403,   403,   403,   200,  403, 403,   403),
    "alert.get":           (401, 403,  200,   403,   403,   403,   200,  403, 403,   403),
    "warning.public":      (200, 200,  200,   200,   200,   200,   200,  200, 200,   200),
    # officers of DP3A-SAMBAS: the operator, or the agency's own officers:manage; DP3A-BENGKAYANG
    # manages its own officers, so Sambas's are as if they did not exist (404)
    "officer.create":      (401, 403,  403,   403,   404,   403,   403,  403, 403,   201),
    "officer.list":        (401, 403,  403,   403,   404,   403,   403,  403, 403,   200),
    "officer.get":         (401, 403,  403,   403,   404,   403,   403,  403, 403,   200),
    "officer.update":      (401, 403,  403,   403,   404,   403,   403,  403, 403,   200),
    "officer.password_reset": (401, 403, 403, 403,   404,   403,   403,  403, 403,   200),
    "officer.totp_reset":  (401, 403,  403,   403,   404,   403,   403,  403, 403,   200),
}
# fmt: on

# FastAPI's own documentation routes: the same for everyone, and not part of the API.
NOT_IN_MATRIX = {
    "openapi": "/openapi.json, the OpenAPI document (public, generated by FastAPI)",
    "swagger_ui_html": "/docs, the Swagger UI page (api/http/docs.py)",
    "swagger_ui_redirect": "/docs/oauth2-redirect, part of the Swagger UI",
    "redoc_html": "/redoc, the ReDoc page",
    "docs_assets": "/docs-assets/..., the pages' scripts and styles, served from the fastapi-offline package",
    "redoc_js": "/docs-assets/redoc.standalone.js, the packaged ReDoc bundle (its logo made local)",
}

# The console's pages (api/console): signed in with an officer's session cookie, not a bearer
# token, so the same for every column here; tests/test_console.py checks them per officer, and
# test_console_pages_refuse_without_a_session below that none is reached without a session.
CONSOLE = {
    "console.root": "GET /: a redirect to the sign-in form or the officer's home",
    "console.css": "GET /console/static/console.css: the stylesheet (public)",
    "console.signin_form": "GET /console/masuk: the sign-in form (public)",
    "console.signin": "POST /console/masuk: signing in (the form's own CSRF token)",
    "console.signout": "POST /console/keluar",
    "console.home": "GET /console",
    "console.overview": "GET /console/ringkasan (stats:read)",
    "console.download": "GET /console/ringkasan/unduh.{fmt} (stats:read)",
    "console.register_download": "GET /console/ringkasan/register.{fmt} (stats:read)",
    "console.referrals_download": "GET /console/ringkasan/rujukan.{fmt} (stats:read)",
    "console.week": "GET /console/pekan (notices:read or referrals:read)",
    "console.referrals": "GET /console/rujukan (referrals:read)",
    "console.acknowledge": "POST /console/pemberitahuan/{id}/konfirmasi (notices:ack)",
    "console.follow_up": "POST /console/pemberitahuan/{id}/tindak-lanjut (notices:ack)",
    "console.transition": "POST /console/rujukan/{id}/status (referrals:respond / write)",
    "console.locate": "POST /console/kedatangan/{manifest_id}/orang/{person_id}/hasil (manifests:locate)",
    "console.audit": "GET /console/audit (audit:read)",
    "console.checkpoint": "GET /console/audit/titik-periksa (audit:read)",
    "console.signin_password_form": "GET /console/masuk/sandi-baru: a sign-in's step after a reset (its own cookie)",
    "console.signin_password": "POST /console/masuk/sandi-baru",
    "console.signin_totp_form": "GET /console/masuk/totp: a sign-in's step enrolling a second factor (its own cookie)",
    "console.signin_totp": "POST /console/masuk/totp",
    "console.security": "GET /console/keamanan: the officer's own account",
    "console.security_password": "POST /console/keamanan/sandi",
    "console.security_totp_start": "POST /console/keamanan/totp/mulai",
    "console.security_totp": "POST /console/keamanan/totp",
    "console.officers": "GET /console/petugas (officers:manage)",
    "console.officer_create": "POST /console/petugas (officers:manage)",
    "console.officer_status": "POST /console/petugas/{id}/status (officers:manage)",
    "console.officer_password_reset": "POST /console/petugas/{id}/sandi (officers:manage)",
    "console.officer_totp_reset": "POST /console/petugas/{id}/totp (officers:manage)",
}
CONSOLE_PATHS = {
    "console.signout": ("POST", "/console/keluar"),
    "console.home": ("GET", "/console"),
    "console.overview": ("GET", "/console/ringkasan"),
    "console.download": ("GET", "/console/ringkasan/unduh.xlsx"),
    "console.register_download": ("GET", "/console/ringkasan/register.xlsx"),
    "console.referrals_download": ("GET", "/console/ringkasan/rujukan.csv"),
    "console.week": ("GET", "/console/pekan"),
    "console.referrals": ("GET", "/console/rujukan"),
    "console.acknowledge": ("POST", "/console/pemberitahuan/00000000-0000-4000-8000-000000000000/konfirmasi"),
    "console.follow_up": ("POST", "/console/pemberitahuan/00000000-0000-4000-8000-000000000000/tindak-lanjut"),
    "console.transition": ("POST", "/console/rujukan/00000000-0000-4000-8000-000000000000/status"),
    "console.locate": ("POST", "/console/kedatangan/00000000-0000-4000-8000-000000000000/orang/"
                               "00000000-0000-4000-8000-000000000000/hasil"),
    "console.audit": ("GET", "/console/audit"),
    "console.checkpoint": ("GET", "/console/audit/titik-periksa"),
    "console.signin_password_form": ("GET", "/console/masuk/sandi-baru"),
    "console.signin_password": ("POST", "/console/masuk/sandi-baru"),
    "console.signin_totp_form": ("GET", "/console/masuk/totp"),
    "console.signin_totp": ("POST", "/console/masuk/totp"),
    "console.security": ("GET", "/console/keamanan"),
    "console.security_password": ("POST", "/console/keamanan/sandi"),
    "console.security_totp_start": ("POST", "/console/keamanan/totp/mulai"),
    "console.security_totp": ("POST", "/console/keamanan/totp"),
    "console.officers": ("GET", "/console/petugas"),
    "console.officer_create": ("POST", "/console/petugas"),
    "console.officer_status": ("POST", "/console/petugas/00000000-0000-4000-8000-000000000000/status"),
    "console.officer_password_reset": ("POST", "/console/petugas/00000000-0000-4000-8000-000000000000/sandi"),
    "console.officer_totp_reset": ("POST", "/console/petugas/00000000-0000-4000-8000-000000000000/totp"),
}

# Errors of these routes follow RFC 6749 §5.2 ({"error", "error_description"}), not RFC 9457.
OAUTH_ERRORS = {"token.issue", "token.revoke"}


# --- the world every cell runs in ------------------------------------------------------------


@dataclass
class World:
    http: httpx.AsyncClient
    db: Database
    creds: dict[str, dict[str, str]]
    tokens: dict[str, str]
    returnee_bky: str = ""  # a returnee of 61.07 pushed by BP3MI
    notice_bky: str = ""  # a notice to 61.07 issued by BP3MI
    referral_bky: str = ""  # BP3MI -> POLRES-BENGKAYANG about returnee_bky, open
    manifest_bky: str = ""  # the demo manifest expected this week (Bengkayang and Melawi)
    manifest_person_bky: str = ""  # one of its people of Bengkayang
    person_bky: str = ""  # a person of the register of 61.07
    alert_bky: str = ""  # a demo alert over 61.07.07
    officer_sambas: str = ""  # the demo officer of DP3A-SAMBAS
    spare_agency: str = "MATRIX-SPARE"
    webhook_bp3mi: str = ""  # a subscription of BP3MI
    delivery_bp3mi: str = ""  # a delivery of it
    serial: Any = field(default_factory=lambda: itertools.count(1))

    def bearer(self, code: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[code]}"}

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self.serial)}-{uuid.uuid4().hex[:6]}"

    async def as_bp3mi(self, method: str, path: str, **kw: Any) -> tuple[str, str]:
        """Arrange something through the API as BP3MI (the writer of most targets): its id and ETag."""
        r = await self.http.request(method, path, headers=self.bearer("BP3MI-KALBAR"), **kw)
        assert r.status_code == 201, r.text
        return r.json()["id"], r.headers["etag"]

    async def fresh_notice(self) -> tuple[str, str]:
        return await self.as_bp3mi("POST", "/v1/notices", json={
            "district": "61.07", "returnee_ids": [self.returnee_bky], "summary": "matrix"})

    async def fresh_webhook(self) -> str:
        r = await self.http.post("/v1/webhooks", headers=self.bearer("BP3MI-KALBAR"), json={
            "url": "http://127.0.0.1:9/matrix", "event_types": ["notice.created"]})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def fresh_manifest(self, arrived: bool = False) -> tuple[str, str, str]:
        """A manifest of one person of Bengkayang (arrived, if asked): its id, ETag and the person."""
        today = date.today().isoformat()
        r = await self.http.post("/v1/manifests", headers=self.bearer("BP3MI-KALBAR"), json={
            "letter_ref": self.unique("KJRI-MATRIX"), "letter_date": today, "expected_date": today,
            "entry_point": "plbn_jagoi_babang", "persons": [{"full_name": "Matrix", "sex": "F", "origin_district": "61.07"}]})
        assert r.status_code == 201, r.text
        mid, etag, person = r.json()["id"], r.headers["etag"], r.json()["persons"][0]["id"]
        if arrived:
            r = await self.http.post(f"/v1/manifests/{mid}/arrivals", headers={**self.bearer("BP3MI-KALBAR"), "If-Match": etag},
                                     json={"arrived_on": today, "persons": [{"person_id": person, "status": "arrived"}]})
            assert r.status_code == 200, r.text
            etag = f'"{r.json()["persons"][0]["version"]}"'  # the person's ETag
        return mid, etag, person

    async def fresh_referral(self) -> tuple[str, str]:
        return await self.as_bp3mi("POST", "/v1/referrals", json=referral_body(
            "POLRES-BENGKAYANG", returnee_id=self.returnee_bky))


def referral_body(to_agency: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "to_agency": to_agency,
        "subject": {"full_name": "Rina", "sex": "F", "birth_date": "1998-02-03", "district": "61.07.07"},
        "reason": "suspected_tppo_victim",
        "legal_basis": "UU-21-2007:51",
        "urgency": "normal",
        "consent": {"given": True, "given_by": "Rina (the subject)", "given_at": "2025-05-20T03:00:00Z",
                    "method": "written"},
        "note": "authorisation matrix",
    }
    if "returnee_id" in over:
        body.pop("subject")
    body.update(over)
    return body


def returnee_record(ref: str, district: str = "61.07", subdistrict: str | None = "61.07.07") -> dict[str, Any]:
    return {
        "source_ref": ref, "full_name": "Siti Aminah", "sex": "F", "birth_date": "1990-05-05",
        "origin_district": district, "origin_subdistrict": subdistrict, "returned_from_country": "MY",
        "return_type": "deported", "return_date": "2025-03-14", "entry_point": "PLBN Jagoi Babang",
        "trafficking_status": "possible",
    }


@pytest.fixture(scope="module")
async def world(module_demo: DemoCopy) -> AsyncIterator[World]:
    """One database with the demo data and one app for the whole module; one token per agency."""
    settings, demo = module_demo.settings, module_demo.demo
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        checked = CheckReplies(app)
        transport = httpx.ASGITransport(app=checked, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            creds = demo["clients"]
            tokens = {}
            for code, c in creds.items():
                r = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                    auth=(c["client_id"], c["client_secret"]))
                assert r.status_code == 200, r.text
                tokens[code] = r.json()["access_token"]
            db = app.state.services.db
            w = World(http=http, db=db, creds=creds, tokens=tokens)
            async with db.read() as conn:
                # an adult (a child's referral needs a guardian's consent), the same one every run
                w.returnee_bky = str((await conn.execute(
                    sa.select(Returnee.id).where(Returnee.origin_district == "61.07",
                                                 Returnee.source_agency == "BP3MI-KALBAR",
                                                 Returnee.birth_date < date(1995, 1, 1))
                    .order_by(Returnee.source_ref).limit(1))).scalar_one())
                w.notice_bky = str((await conn.execute(
                    sa.select(Notice.id).where(Notice.district == "61.07", Notice.issued_by == "BP3MI-KALBAR")
                    .order_by(Notice.created_at, Notice.id).limit(1))).scalar_one())
                w.manifest_bky = str((await conn.execute(
                    sa.select(Manifest.id).where(Manifest.letter_ref == EXPECTED_LETTER))).scalar_one())
                w.manifest_person_bky = str((await conn.execute(
                    sa.select(ManifestPerson.id).where(ManifestPerson.manifest_id == uuid.UUID(w.manifest_bky),
                                                       ManifestPerson.origin_district == "61.07")
                    .order_by(ManifestPerson.position).limit(1))).scalar_one())
                w.person_bky = str((await conn.execute(
                    sa.select(RegisterPerson.person_id).where(RegisterPerson.origin_district == "61.07")
                    .order_by(RegisterPerson.person_id).limit(1))).scalar_one())
                w.officer_sambas = str((await conn.execute(
                    sa.select(Officer.id).where(Officer.email == "petugas@dp3a.sambas.go.id"))).scalar_one())
                w.alert_bky = str((await conn.execute(
                    sa.select(RecruitmentAlert.id).order_by(RecruitmentAlert.raised_at, RecruitmentAlert.id)
                    .limit(1))).scalar_one())
            w.referral_bky, _ = await w.fresh_referral()
            async with operator_unit(db, "test") as session:
                await agencies.create_agency(session, AgencyCreate(
                    code=w.spare_agency, name="Spare agency of the matrix", kind=AgencyKind.other, jurisdiction="61.01"))
            w.webhook_bp3mi = await w.fresh_webhook()
            async with operator_unit(db, "test") as session:
                delivery = WebhookDelivery(webhook_id=uuid.UUID(w.webhook_bp3mi), event_id=uuid.uuid4(), event_pos=0,
                                           event_type="notice.created", body="{}", last_attempt=1,
                                           status=DeliveryStatus.failed, next_attempt_at=clock.now())
                session.add(delivery)
            w.delivery_bp3mi = str(delivery.id)
            yield w
        assert not checked.mismatches, checked.mismatches


# --- what each cell sends --------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    bearer: bool = True  # send the column's token (the oauth endpoints take client credentials instead)


Builder = Callable[[World, str], Awaitable[Call]]


def static(method: str, path: str, **kw: Any) -> Builder:
    async def build(w: World, who: str) -> Call:
        return Call(method, path, **kw)

    return build


async def _token_issue(w: World, who: str) -> Call:
    if who == NONE:
        return Call("POST", "/oauth/token", data={"grant_type": "client_credentials"}, bearer=False)
    c = w.creds[who]
    return Call("POST", "/oauth/token", bearer=False, data={
        "grant_type": "client_credentials", "client_id": c["client_id"], "client_secret": c["client_secret"]})


async def _token_revoke(w: World, who: str) -> Call:
    if who == NONE:
        return Call("POST", "/oauth/revoke", data={"token": w.tokens["BP3MI-KALBAR"]}, bearer=False)
    c = w.creds[who]
    issued = await w.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(c["client_id"], c["client_secret"]))
    # a throwaway token of the agency's own: the module's token stays live for the other cells
    return Call("POST", "/oauth/revoke", bearer=False, data={
        "token": issued.json()["access_token"], "client_id": c["client_id"], "client_secret": c["client_secret"]})


async def _agency_create(w: World, who: str) -> Call:
    code = w.unique("MATRIX").upper()
    return Call("POST", "/v1/agencies", json={"code": code, "name": "Matrix agency", "kind": "other",
                                              "jurisdiction": "61.01"})


async def _client_disable(w: World, who: str) -> Call:
    async with operator_unit(w.db, "test") as session:
        created = await agencies.create_client(session, w.spare_agency, ClientCreate(scopes=["events:read"]))
    return Call("POST", f"/v1/agencies/{w.spare_agency}/clients/{created.client_id}/disable")


async def _returnee_batch(w: World, who: str) -> Call:
    return Call("POST", "/v1/returnees/batch", json={"records": [returnee_record(w.unique("MATRIX"))]})


async def _returnee_get(w: World, who: str) -> Call:
    return Call("GET", f"/v1/returnees/{w.returnee_bky}")


async def _notice_create(w: World, who: str) -> Call:
    return Call("POST", "/v1/notices", json={"district": "61.07", "returnee_ids": [w.returnee_bky],
                                             "summary": "matrix"})


async def _notice_get(w: World, who: str) -> Call:
    return Call("GET", f"/v1/notices/{w.notice_bky}")


async def _notice_acknowledge(w: World, who: str) -> Call:
    notice, etag = await w.fresh_notice()
    return Call("POST", f"/v1/notices/{notice}/acknowledge", headers={"If-Match": etag})


async def _notice_follow_up(w: World, who: str) -> Call:
    return Call("POST", f"/v1/notices/{w.notice_bky}/follow-ups",
                json={"action": "home_visit", "note": "matrix", "occurred_on": "2025-06-20"})


async def _referral_create(w: World, who: str) -> Call:
    to = "POLRES-BENGKAYANG" if who == "DINSOS-BENGKAYANG" else "DINSOS-BENGKAYANG"
    return Call("POST", "/v1/referrals", json=referral_body(to))


async def _referral_get(w: World, who: str) -> Call:
    return Call("GET", f"/v1/referrals/{w.referral_bky}")


async def _referral_transition(w: World, who: str) -> Call:
    ref, etag = await w.fresh_referral()
    return Call("POST", f"/v1/referrals/{ref}/transitions", json={"action": "receive"}, headers={"If-Match": etag})


async def _referral_returnee(w: World, who: str) -> Call:
    return Call("GET", f"/v1/referrals/{w.referral_bky}/returnee")


async def _webhook_delete(w: World, who: str) -> Call:
    return Call("DELETE", f"/v1/webhooks/{await w.fresh_webhook()}")


def _webhook(method: str, tail: str = "", **kw: Any) -> Builder:
    async def build(w: World, who: str) -> Call:
        path = f"/v1/webhooks/{w.webhook_bp3mi}{tail}".replace("{delivery}", w.delivery_bp3mi)
        return Call(method, path, **kw)

    return build


async def _manifest_create(w: World, who: str) -> Call:
    today = date.today().isoformat()
    return Call("POST", "/v1/manifests", json={
        "letter_ref": w.unique("KJRI-MATRIX"), "letter_date": today, "expected_date": today,
        "entry_point": "plbn_entikong", "persons": [{"full_name": "Matrix", "sex": "M", "origin_district": "61.07"}]})


async def _manifest_arrivals(w: World, who: str) -> Call:
    mid, etag, person = await w.fresh_manifest()
    return Call("POST", f"/v1/manifests/{mid}/arrivals", headers={"If-Match": etag},
                json={"arrived_on": date.today().isoformat(), "persons": [{"person_id": person, "status": "arrived"}]})


async def _manifest_locate(w: World, who: str) -> Call:
    mid, etag, person = await w.fresh_manifest(arrived=True)
    return Call("POST", f"/v1/manifests/{mid}/persons/{person}/outcome", headers={"If-Match": etag},
                json={"outcome": "located", "village": "61.07.07.2001", "seen_by": "Kepala Desa",
                      "seen_on": date.today().isoformat()})


async def _departure_batch(w: World, who: str) -> Call:
    region = ("61.01", "61.01.01") if who == "DP3A-SAMBAS" else ("61.07", "61.07.07")
    return Call("POST", "/v1/register/departures/batch", json={"records": [{
        "source_ref": w.unique("MATRIX"), "full_name": "Siti Aminah", "sex": "F", "origin_district": region[0],
        "origin_subdistrict": region[1], "destination_country": "MY", "departure_date": "2025-03-01",
        "procedural": False}]})


async def _report_create(w: World, who: str) -> Call:
    return Call("POST", "/v1/alerts/reports", json={
        "modus": "fake_job_offer_social_media", "region": "61.07.07", "route": ["61.07.07"],
        "identifiers": [{"kind": "phone", "value": "0812 0000 1111"}]})


async def _officer_create(w: World, who: str) -> Call:
    return Call("POST", "/v1/agencies/DP3A-SAMBAS/officers",
                json={"email": f"{w.unique('matrix').lower()}@dp3a.sambas.go.id", "scopes": ["notices:read"]})


async def _fresh_officer(w: World) -> str:
    """An officer of DP3A-SAMBAS of its own, for a cell that changes one."""
    async with operator_unit(w.db, "test") as session:
        made = await officers.create_officer(session, "DP3A-SAMBAS", OfficerCreate(
            email=f"{w.unique('matrix').lower()}@dp3a.sambas.go.id", scopes=["notices:read"]))
    return str(made.id)


def _officer_change(method: str, tail: str, **kw: Any) -> Builder:
    async def build(w: World, who: str) -> Call:
        return Call(method, f"/v1/agencies/DP3A-SAMBAS/officers/{await _fresh_officer(w)}{tail}", **kw)

    return build


def call_for(route: str) -> Builder:
    builders: dict[str, Builder] = {
        "healthz": static("GET", "/healthz"),
        "readyz": static("GET", "/readyz"),
        "metrics": static("GET", "/metrics"),
        "jwks": static("GET", "/.well-known/jwks.json"),
        "oauth.metadata": static("GET", "/.well-known/oauth-authorization-server"),
        "token.issue": _token_issue,
        "token.revoke": _token_revoke,
        "agency.create": _agency_create,
        "agency.list": static("GET", "/v1/agencies"),
        "client.create": static("POST", "/v1/agencies/MATRIX-SPARE/clients", json={"scopes": ["events:read"]}),
        "client.disable": _client_disable,
        "audit.list": static("GET", "/v1/audit", params={"limit": 5}),
        "audit.verify": static("GET", "/v1/audit/verify"),
        "audit.checkpoint": static("GET", "/v1/audit/checkpoint"),
        "returnee.batch": _returnee_batch,
        "returnee.list": static("GET", "/v1/returnees", params={"limit": 5}),
        "returnee.get": _returnee_get,
        "notice.create": _notice_create,
        "notice.list": static("GET", "/v1/notices", params={"limit": 5}),
        "notice.get": _notice_get,
        "notice.acknowledge": _notice_acknowledge,
        "notice.follow_up": _notice_follow_up,
        "referral.create": _referral_create,
        "referral.list": static("GET", "/v1/referrals", params={"limit": 5}),
        "referral.get": _referral_get,
        "referral.transition": _referral_transition,
        "referral.returnee": _referral_returnee,
        "stats.returnees": static("GET", "/v1/stats/returnees", params={"group_by": "district"}),
        "stats.referrals": static("GET", "/v1/stats/referrals", params={"group_by": "status"}),
        "event.list": static("GET", "/v1/events", params={"limit": 5}),
        "webhook.create": static("POST", "/v1/webhooks", json={"url": "http://127.0.0.1:9/matrix",
                                                              "event_types": ["referral.requested"]}),
        "webhook.list": static("GET", "/v1/webhooks", params={"limit": 5}),
        "webhook.get": _webhook("GET"),
        "webhook.delete": _webhook_delete,
        "webhook.enable": _webhook("POST", "/enable"),
        "webhook.deliveries": _webhook("GET", "/deliveries", params={"limit": 5}),
        "webhook.redeliver": _webhook("POST", "/deliveries/{delivery}/redeliver"),
        "region.list": static("GET", "/v1/regions", params={"parent": "61.07"}),
        "region.get": static("GET", "/v1/regions/61.07.07"),
        "manifest.create": _manifest_create,
        "manifest.list": static("GET", "/v1/manifests", params={"limit": 5}),
        "manifest.week": static("GET", "/v1/manifests/persons", params={"view": "expected_this_week"}),
        "manifest.get": lambda w, who: static("GET", f"/v1/manifests/{w.manifest_bky}")(w, who),
        "manifest.person": lambda w, who: static(
            "GET", f"/v1/manifests/{w.manifest_bky}/persons/{w.manifest_person_bky}")(w, who),
        "manifest.arrivals": _manifest_arrivals,
        "manifest.locate": _manifest_locate,
        "departure.batch": _departure_batch,
        "register.person.list": static("GET", "/v1/register/persons", params={"limit": 5}),
        "register.person.get": lambda w, who: static("GET", f"/v1/register/persons/{w.person_bky}")(w, who),
        "register.counts": static("GET", "/v1/register/counts", params={"district": "61.07"}),
        "recruitment.report.create": _report_create,
        "alert.list": static("GET", "/v1/alerts", params={"limit": 5}),
        "alert.get": lambda w, who: static("GET", f"/v1/alerts/{w.alert_bky}")(w, who),
        "warning.public": static("GET", "/v1/public/warnings"),
        "officer.create": _officer_create,
        "officer.list": static("GET", "/v1/agencies/DP3A-SAMBAS/officers", params={"limit": 5}),
        "officer.get": lambda w, who: static("GET", f"/v1/agencies/DP3A-SAMBAS/officers/{w.officer_sambas}")(w, who),
        "officer.update": _officer_change("PATCH", "", json={"scopes": ["notices:read", "notices:ack"]}),
        "officer.password_reset": _officer_change("POST", "/password"),
        "officer.totp_reset": _officer_change("POST", "/totp", json={"enrol_at_sign_in": False}),
    }
    return builders[route]


async def send(w: World, who: str, call: Call) -> httpx.Response:
    headers = dict(call.headers)
    if call.bearer and who != NONE:
        headers.update(w.bearer(who))
    return await w.http.request(call.method, call.path, params=call.params, json=call.json, data=call.data,
                                headers=headers)


def error_shape(route: str, r: httpx.Response) -> str | None:
    """What is wrong with an error reply's format, if anything."""
    ctype = r.headers.get("content-type", "")
    try:
        body = r.json()
    except ValueError:
        return f"not JSON ({ctype})"
    if route in OAUTH_ERRORS:
        if not ctype.startswith("application/json") or not isinstance(body, dict) or "error" not in body:
            return f"not an RFC 6749 error ({ctype}): {r.text[:200]}"
        return None
    if not ctype.startswith("application/problem+json"):
        return f"not problem+json ({ctype}): {r.text[:200]}"
    if not isinstance(body, dict) or body.get("status") != r.status_code or not {"type", "title"} <= body.keys():
        return f"not a problem document: {r.text[:200]}"
    if "Traceback" in r.text:
        return "a stack trace in the reply"
    return None


# --- the tests -------------------------------------------------------------------------------


def api_route_names() -> set[str]:
    from api.core.settings import Settings

    app = create_app(Settings(mode="development"), configure_logging=False)
    names = [rc.name for rc in iter_route_contexts(app.routes)]
    assert len(names) == len(set(names)), "two routes share a name"
    return {n for n in names if n not in NOT_IN_MATRIX}


def test_every_route_has_a_row() -> None:
    """A route added without a row (or a row left for a removed route) fails here."""
    assert set(MATRIX) | set(CONSOLE) == api_route_names()
    assert not set(MATRIX) & set(CONSOLE)
    assert COLUMNS[1:] == tuple(a["code"] for a in AGENCIES), "a demo agency has no column (or one too many)"
    bad = [name for name, row in MATRIX.items() if len(row) != len(COLUMNS)]
    assert not bad, f"rows without one status per column: {bad}"


@pytest.mark.parametrize("route", list(MATRIX))
async def test_matrix_row(world: World, route: str) -> None:
    """Every cell of the route's row: the status, and the format of every error."""
    build = call_for(route)
    observed: list[int] = []
    wrong: list[str] = []
    for who, expected in zip(COLUMNS, MATRIX[route], strict=True):
        r = await send(world, who, await build(world, who))
        observed.append(r.status_code)
        if r.status_code != expected:
            wrong.append(f"{who}: expected {expected}, got {r.status_code} {r.text[:300]}")
        if r.status_code >= 400 and (problem := error_shape(route, r)):
            wrong.append(f"{who}: {problem}")
        if r.status_code >= 500:
            wrong.append(f"{who}: a server error")
    as_observed = f'    "{route}": ({", ".join(str(s) for s in observed)}),'
    assert not wrong, "\n".join([f"{route}:", *wrong, "the row as observed:", as_observed])


async def test_console_pages_refuse_without_a_session(world: World) -> None:
    """No page or action of the console answers a bearer token or no credentials at all: a page
    redirects to the sign-in form, an action does too, and nothing is done."""
    assert set(CONSOLE_PATHS) <= set(CONSOLE)
    for name, (method, path) in CONSOLE_PATHS.items():
        for who in COLUMNS:
            headers = {} if who == NONE else world.bearer(who)
            r = await world.http.request(method, path, headers=headers, data={"csrf": "x"} if method == "POST" else None)
            assert r.status_code == 303 and r.headers["location"].startswith("/console/masuk"), (name, who, r.status_code)


# --- where one may write (issue 8, item 4) ---------------------------------------------------
#
# A district agency writes only records whose origin lies in its jurisdiction; BP3MI, the border
# intake of the province, receives deportees of every district. The district writer is
# DP3A-SAMBAS (61.01) with a client holding returnees:write and notices:write (no demo client
# has them: that is what a partner asking for them would get).
#
# A refusal is, for the batch (each record has its own result), the record "rejected" on
# origin_district, and for a notice a 403 problem; either way nothing is stored.

DISTRICT_WRITER_SCOPES = ["returnees:write", "returnees:read", "notices:write", "notices:read"]


@dataclass(frozen=True)
class WriteCase:
    writer: str  # "district" (DP3A-SAMBAS with the writer client) or "BP3MI-KALBAR"
    what: str  # "push" a returnee of `district`, or "notice" into `district`
    district: str
    allowed: bool


WRITE_JURISDICTION = [
    pytest.param(WriteCase("district", "push", "61.07", allowed=False), id="district-pushes-other"),
    pytest.param(WriteCase("district", "notice", "61.07", allowed=False), id="district-notifies-other"),
    pytest.param(WriteCase("district", "push", "61.01", allowed=True), id="district-pushes-own"),
    pytest.param(WriteCase("district", "notice", "61.01", allowed=True), id="district-notifies-own"),
    pytest.param(WriteCase("BP3MI-KALBAR", "push", "61.01", allowed=True), id="border-intake-pushes-any"),
    pytest.param(WriteCase("BP3MI-KALBAR", "notice", "61.01", allowed=True), id="border-intake-notifies-any"),
]


@pytest.fixture(scope="module")
async def district_writer(world: World) -> str:
    """A token of DP3A-SAMBAS (61.01) holding returnees:write and notices:write."""
    async with operator_unit(world.db, "test") as session:
        created = await agencies.create_client(session, "DP3A-SAMBAS", ClientCreate(scopes=DISTRICT_WRITER_SCOPES))
    r = await world.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(created.client_id, created.client_secret))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


async def _returnee_of(w: World, source_agency: str, district: str) -> str:
    """A returnee of ``district`` held by ``source_agency``, written straight to the database
    (as if it had been pushed before any rule): the notice case tests the notice rule alone."""
    from tests.returnee_rows import insert_returnees

    return str((await insert_returnees(w.db, source_agency, district))[0])


@pytest.mark.parametrize("case", WRITE_JURISDICTION)
async def test_write_jurisdiction(world: World, district_writer: str, case: WriteCase) -> None:
    agency = "DP3A-SAMBAS" if case.writer == "district" else case.writer
    headers = {"Authorization": f"Bearer {district_writer if case.writer == 'district' else world.tokens[agency]}"}
    if case.what == "push":
        ref = world.unique("WJ")
        sub = "61.07.07" if case.district == "61.07" else "61.01.01"
        r = await world.http.post("/v1/returnees/batch", headers=headers,
                                  json={"records": [returnee_record(ref, case.district, sub)]})
        async with world.db.read() as conn:
            stored = (await conn.execute(sa.select(sa.func.count()).select_from(Returnee).where(
                Returnee.source_agency == agency, Returnee.source_ref == ref))).scalar_one()
        if case.allowed:
            assert r.status_code == 200 and r.json()["results"][0]["status"] == "created", r.text
            assert stored == 1
        else:
            result = r.json()["results"][0]
            assert r.status_code == 200 and result["status"] == "rejected", r.text
            assert [e["field"] for e in result["errors"]] == ["origin_district"], result
            assert stored == 0
        return
    returnee = await _returnee_of(world, agency, case.district)
    r = await world.http.post("/v1/notices", headers=headers,
                              json={"district": case.district, "returnee_ids": [returnee]})
    async with world.db.read() as conn:
        stored = (await conn.execute(sa.select(sa.func.count()).select_from(NoticeReturnee).where(
            NoticeReturnee.returnee_id == uuid.UUID(returnee)))).scalar_one()
    if case.allowed:
        assert r.status_code == 201, r.text
        assert stored == 1
    else:
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert r.json()["type"].endswith("outside-jurisdiction")
        assert stored == 0
