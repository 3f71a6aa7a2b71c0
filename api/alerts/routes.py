"""``/v1/alerts``: recruitment reports and the alerts they raise; ``/v1/public/warnings``: the
warning list anyone may read (no token), for the district's public-information office."""

from __future__ import annotations

import uuid

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.alerts import service
from api.alerts.schemas import ALERTS, WARNINGS, AlertList, AlertOut, ReportIn, ReportOut, WarningList
from api.core.unit import unit_of
from api.http import auth, idempotency, inputs
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
public_router = APIRouter(prefix="/v1/public", tags=["public"])


def _json(body: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), status_code=status_code,
                    media_type="application/json")


@router.post("/reports", response_model=ReportOut, status_code=201, name="recruitment.report.create",
             dependencies=[idempotency.KEY])
async def create_report(caller: auth.AlertsWrite, session: SessionDep, request: Request, body: ReportIn) -> Response:
    """Report an illegal recruitment: the modus, where it took place (a region the caller may write
    for), the route and places, the recruiter's identifiers (stored only encrypted; the reply
    gives back their kinds, never their values) and the returnees who named the recruiter (each
    one in the caller's view). When an identifier has been reported by enough distinct agencies
    (``SINERGI_ALERT_THRESHOLD``), the police and task force over the places are alerted on the
    feed (``alert.raised``). Takes an optional ``Idempotency-Key``."""
    idem = await idempotency.begin(session, caller, request)
    if idem.replay is not None:
        return idem.replay
    body_out = ReportOut.model_validate(await service.report(session, caller, body)).model_dump(mode="json")
    idem.remember(session, 201, body_out)
    return _json(body_out, 201)


@router.get("", response_model=AlertList, name="alert.list")
async def list_alerts(caller: auth.AlertsRead, session: SessionDep, limit: Limit = DEFAULT_LIMIT,
                      cursor: Cursor = None) -> Response:
    """The alerts over the caller's jurisdiction (for the police and the task force), newest first.
    The identifier's value only with ``pii:read``."""
    settings = unit_of(session).settings
    items, nxt = await service.list_alerts(session, caller, after=ALERTS.open(settings, cursor), limit=limit)
    return _json({"items": items, "next_cursor": ALERTS.seal(settings, nxt)})


@router.get("/{alert_id}", response_model=AlertOut, name="alert.get")
async def get_alert(caller: auth.AlertsRead, session: SessionDep, alert_id: uuid.UUID) -> Response:
    """One alert over the caller's jurisdiction (404 otherwise)."""
    return _json(await service.read_alert(session, caller, alert_id))


@public_router.get("/warnings", response_model=WarningList, name="warning.public")
async def public_warnings(session: SessionDep, request: Request, limit: Limit = DEFAULT_LIMIT,
                          cursor: Cursor = None) -> Response:
    """Recruitment modus seen at places of Kalimantan Barat, each reported by independent agencies:
    for the public-information office to publish. No token needed (rate-limited per address). It
    names no person, no identifier and no free text."""
    await inputs.screen(request)
    settings = unit_of(session).settings
    items, nxt = await service.warnings(session, after=WARNINGS.open(settings, cursor), limit=limit)
    return _json({"items": items, "next_cursor": WARNINGS.seal(settings, nxt)})
