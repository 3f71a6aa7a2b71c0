"""The console's pages: sign-in (with its steps: a new password after a reset, a second factor
to enrol), the province's overview, a district office's week, the referrals received, the audit
trail, the agency's officers, the officer's own account security; and the downloads.

Officers sign in with their own account (:mod:`api.officers`); a page's request runs as the
officer (``Caller.officer``) in the agency's name, so every read and action goes through the
same services as the API and is audited under both. Every form carries the session's CSRF token
(the sign-in form a double-submit one, a sign-in step its half-done session's); an action
carries the ETag it was shown as ``If-Match``. Whatever checks a password or a code (signing in,
its steps, the account page) is rate limited per address as signing in is.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.audit import repository as audit_repository
from api.audit import service as audit_service
from api.audit.schemas import AUDIT, AuditEventPublic
from api.console import charts, downloads, i18n, qr
from api.console import service as console
from api.core import access, audit, clock
from api.core import text as text_rules
from api.core.context import RequestContext
from api.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Problem,
    Unauthorized,
    ValidationFailed,
)
from api.core.scopes import Scope
from api.core.unit import open_unit
from api.http.ratelimit import counter_key
from api.http.session import SessionDep, request_context, services
from api.manifests import service as manifests
from api.manifests.schemas import OutcomeIn
from api.notices import service as notices
from api.notices.schemas import FollowUpCreate
from api.officers import service as officers
from api.officers.schemas import OfficerCreate, OfficerUpdate, PasswordChange, TotpReset
from api.referrals import service as referrals
from api.referrals.workflow import Action
from api.stats import service as stats
from models import FollowUpAction, Outcome

router = APIRouter(tags=["console"], include_in_schema=False)

SESSION_COOKIE = "sinergi_session"
SIGNIN_COOKIE = "sinergi_signin"  # the sign-in form's double-submit CSRF token
LANG_COOKIE = "sinergi_lang"
SIGNIN = "/console/masuk"
PENDING_COOKIE = "sinergi_pending"  # a sign-in half done (its steps live under SIGNIN)
STEPS = {officers.PASSWORD_STAGE: SIGNIN + "/sandi-baru", officers.TOTP_STAGE: SIGNIN + "/totp"}

_TEMPLATES = resources.files("api.console").joinpath("templates")
_env = Environment(loader=FileSystemLoader(str(_TEMPLATES)), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_CSS = resources.files("api.console").joinpath("static/console.css").read_bytes()

# No resource from elsewhere, no script, no inline style: the pages need none.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


# --- who is signed in ----------------------------------------------------------------------


class SignInNeeded(Unauthorized):
    """No live console session: the page redirects to the sign-in form."""

    def __init__(self) -> None:
        super().__init__("A console session is required")


class PageForbidden(Forbidden):
    """The officer lacks the scope of a page: an HTML 403 (audited as a denial)."""


class BadCsrf(Forbidden):
    slug, title = "csrf-refused", "The form's CSRF token is missing or wrong"

    def __init__(self) -> None:
        super().__init__("a form token")


async def _signed_in(request: Request) -> officers.Console | None:
    """The cookie's live session, looked up (and its last use noted) in a short unit of its own,
    before the page's own (which may only read)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    svc = services(request)
    ctx = request_context(request)
    async with open_unit(svc.db, RequestContext(request_id=ctx.request_id, ip=ctx.ip, route="console.session")) as unit:
        return await officers.open_session(unit.session, svc.settings, token)


async def _officer(request: Request) -> officers.Console:
    found = await _signed_in(request)
    if found is None:
        raise SignInNeeded()
    request_context(request).caller = found.caller  # the page's audit entries: the officer, for the agency
    return found


Officer = Annotated[officers.Console, Depends(_officer)]


def _need(officer: officers.Console, *scopes: Scope) -> None:
    if not any(officer.caller.has(s) for s in scopes):
        raise PageForbidden(" ".join(scopes))


async def _fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _checked_form(request: Request, csrf: str) -> dict[str, str]:
    """The form's fields, if it carries the synchronizer token ``csrf``; else a 403 page."""
    fields = await _fields(request)
    if not officers.csrf_matches(csrf, fields.get("csrf")):
        raise BadCsrf()
    return fields


async def _form(request: Request, officer: officers.Console) -> dict[str, str]:
    return await _checked_form(request, officer.csrf)


async def _too_many(request: Request, session: SessionDep, action: str) -> bool:
    """Whether the address is past ``rate_signin`` attempts (this one counted): a refusal in the
    chain. Every form that checks a password or a code counts here."""
    svc = services(request)
    if svc.limiter is None:
        return False
    verdict = await svc.limiter.hit(counter_key("signin", request_context(request).ip), svc.settings.rate_signin,
                                    session)
    if verdict.allowed:
        return False
    audit.record(session, action, outcome=Outcome.denied, resource_type="officer", reason="rate")
    return True


# --- rendering -------------------------------------------------------------------------------


def _lang(request: Request) -> str:
    return i18n.lang_of(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))


def _secure(request: Request) -> bool:
    return services(request).settings.mode != "development"


def render(request: Request, template: str, officer: officers.Console | None, status: int = 200,
           **values: Any) -> HTMLResponse:
    lang = _lang(request)
    t = i18n.translator(lang)
    message = request.query_params.get("msg")
    page = _env.get_template(template).render(
        t=t, lang=lang, officer=officer, csrf=officer.csrf if officer else None, path=request.url.path,
        other_lang="en" if lang == "id" else "id",
        lang_href="?" + urlencode({**{k: v for k, v in request.query_params.items() if k != "msg"},
                                   "lang": "en" if lang == "id" else "id"}),
        message=message if message in i18n.WORDS and message.startswith(("ok_", "err_")) else None,
        region_name=console.region_name, nav=_nav(officer) if officer else [], **values)
    reply = HTMLResponse(page, status_code=status, headers=_HEADERS)
    if request.query_params.get("lang") in i18n.LANGS:
        reply.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="lax",
                         secure=_secure(request))
    return reply


def _nav(officer: officers.Console) -> list[tuple[str, str]]:
    c = officer.caller
    items = [("/console", "nav_home")]
    if c.has(Scope.stats_read):
        items.append(("/console/ringkasan", "nav_overview"))
    if c.has(Scope.notices_read) or c.has(Scope.referrals_read) or c.has(Scope.manifests_read):
        items.append(("/console/pekan", "nav_week"))
    if c.has(Scope.referrals_read):
        items.append(("/console/rujukan", "nav_referrals"))
    if c.has(Scope.audit_read):
        items.append(("/console/audit", "nav_audit"))
    if c.has(Scope.officers_manage):
        items.append(("/console/petugas", "nav_officers"))
    items.append(("/console/keamanan", "nav_security"))
    return items


def _back(form: dict[str, str], msg: str) -> RedirectResponse:
    back = form.get("back", "/console/pekan")
    if not back.startswith("/console") or "//" in back or "\\" in back:
        back = "/console/pekan"
    return _goto(back.split("?", 1)[0], msg)


def _goto(path: str, msg: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'msg': msg})}", status_code=303, headers=_HEADERS)


def install(app: FastAPI) -> None:
    """The console's own replies to its refusals: a redirect to the sign-in form, HTML pages."""

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        reply = RedirectResponse(f"{SIGNIN}?{urlencode({'next': target})}", status_code=303, headers=_HEADERS)
        if request.cookies.get(SESSION_COOKIE):  # one that ended: say so on the form
            reply = RedirectResponse(f"{SIGNIN}?{urlencode({'next': target, 'expired': '1'})}", status_code=303,
                                     headers=_HEADERS)
            reply.delete_cookie(SESSION_COOKIE, path="/")
        return reply

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        return render(request, "error.html", None, 403, key="forbidden")

    @app.exception_handler(BadCsrf)
    async def _csrf(request: Request, exc: BadCsrf) -> Response:
        return render(request, "error.html", None, 403, key="csrf_bad")


# --- signing in and out ------------------------------------------------------------------------


@router.get("/", name="console.root", response_class=RedirectResponse, response_model=None)
async def root(request: Request) -> Response:
    """People who open the service's address: their home, or the sign-in form."""
    found = await _signed_in(request)
    return RedirectResponse("/console" if found else SIGNIN, status_code=303, headers=_HEADERS)


@router.get("/console/static/console.css", name="console.css", response_class=Response, response_model=None)
async def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600",
                                                          "X-Content-Type-Options": "nosniff"})


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console"


@router.get(SIGNIN, name="console.signin_form", response_class=HTMLResponse, response_model=None)
async def signin_form(request: Request, error: str | None = None, expired: str | None = None,
                      next: str | None = None) -> Response:
    token = secrets.token_urlsafe(32)
    key = {"credentials": "signin_failed", "second-factor": "signin_failed", "locked": "signin_locked",
           "rate": "err_rate", "csrf": "csrf_bad", "step": "step_expired"}.get(error or "")
    reply = render(request, "signin.html", None, signin_csrf=token, error=key, expired=bool(expired),
                   next=_safe_next(next))
    reply.set_cookie(SIGNIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                     secure=_secure(request), path=SIGNIN)
    return reply


@router.post(SIGNIN, name="console.signin", response_class=RedirectResponse, response_model=None)
async def signin(request: Request, session: SessionDep) -> Response:
    svc = services(request)
    fields = await _fields(request)
    nxt = _safe_next(fields.get("next"))
    cookie = request.cookies.get(SIGNIN_COOKIE) or ""
    given = fields.get("csrf") or ""
    if not cookie or not secrets.compare_digest(cookie.encode(), given.encode()):
        audit.record(session, "officer.signin", outcome=Outcome.denied, resource_type="officer", reason="csrf")
        return _again("csrf", nxt)
    if await _too_many(request, session, "officer.signin"):
        return _again("rate", nxt)
    result = await officers.sign_in(session, svc.settings, fields.get("email", ""), fields.get("password", ""),
                                    fields.get("code"))
    if isinstance(result, officers.Refused):
        return _again(result.reason, nxt)
    return _onward(request, result, nxt)


def _again(error: str, nxt: str) -> Response:
    """The sign-in form again, saying why; a half-done sign-in's cookie goes."""
    reply = RedirectResponse(f"{SIGNIN}?{urlencode({'error': error, 'next': nxt})}", status_code=303,
                             headers=_HEADERS)
    reply.delete_cookie(PENDING_COOKIE, path=SIGNIN)
    return reply


def _onward(request: Request, result: officers.SignedIn | officers.Pending, nxt: str) -> Response:
    """Where a sign-in whose checks passed leads: its next step (a half-done sign-in's cookie,
    kept to the sign-in's own paths), or the page asked for, with the session's cookie."""
    if isinstance(result, officers.Pending):
        reply = RedirectResponse(f"{STEPS[result.stage]}?{urlencode({'next': nxt})}", status_code=303,
                                 headers=_HEADERS)
        reply.set_cookie(PENDING_COOKIE, result.token, max_age=officers.PENDING_TTL, httponly=True,
                         samesite="strict", secure=_secure(request), path=SIGNIN)
        return reply
    reply = RedirectResponse(nxt, status_code=303, headers=_HEADERS)
    reply.set_cookie(SESSION_COOKIE, result.token, max_age=services(request).settings.session_absolute,
                     httponly=True, samesite="lax", secure=_secure(request), path="/")
    reply.delete_cookie(SIGNIN_COOKIE, path=SIGNIN)
    reply.delete_cookie(PENDING_COOKIE, path=SIGNIN)
    return reply


# --- the steps of a sign-in after the password: a new password, a second factor to enrol -----


async def _pending(request: Request, session: SessionDep) -> officers.HalfSignedIn | None:
    return await officers.open_pending(session, services(request).settings, request.cookies.get(PENDING_COOKIE))


async def _step_form(request: Request, session: SessionDep, stage: str,
                     action: str) -> tuple[officers.HalfSignedIn, dict[str, str], str] | Response:
    """The form of a sign-in step: its half-done sign-in, its fields (CSRF checked) and where
    to go next, or the reply when there is no such sign-in or too many attempts."""
    pending = await _pending(request, session)
    if pending is None:
        return _again("step", _safe_next((await _fields(request)).get("next")))
    form = await _checked_form(request, pending.csrf)
    nxt = _safe_next(form.get("next"))
    if await _too_many(request, session, action):
        return _step_again(stage, "rate", nxt)
    return pending, form, nxt


def _step_again(stage: str, error: str, nxt: str) -> Response:
    return RedirectResponse(f"{STEPS[stage]}?{urlencode({'error': error, 'next': nxt})}", status_code=303,
                            headers=_HEADERS)


_STEP_ERRORS = {"password-invalid": "err_password_invalid", "password-reused": "err_password_reused",
                "second-factor": "err_second_factor", "rate": "err_rate"}


async def _step_page(request: Request, session: SessionDep, stage: str, error: str | None,
                     nxt: str | None) -> Response:
    nxt = _safe_next(nxt)
    pending = await _pending(request, session)
    if pending is None:
        return _again("step", nxt)
    if pending.stage != stage:
        return RedirectResponse(f"{STEPS[pending.stage]}?{urlencode({'next': nxt})}", status_code=303,
                                headers=_HEADERS)
    values: dict[str, Any] = {}
    if pending.secret is not None and pending.totp_uri is not None:
        t = i18n.translator(_lang(request))
        values = {"secret": qr.grouped(pending.secret), "qr": qr.svg(pending.totp_uri, t("qr_label"))}
    return render(request, "signin_step.html", None, step=stage, step_csrf=pending.csrf, next=nxt,
                  email=pending.officer.email, error=_STEP_ERRORS.get(error or ""), **values)


@router.get(STEPS[officers.PASSWORD_STAGE], name="console.signin_password_form", response_class=HTMLResponse,
            response_model=None)
async def new_password_form(request: Request, session: SessionDep, error: str | None = None,
                            next: str | None = None) -> Response:
    """After a reset: the officer chooses their own password before any page opens."""
    return await _step_page(request, session, officers.PASSWORD_STAGE, error, next)


@router.post(STEPS[officers.PASSWORD_STAGE], name="console.signin_password", response_class=RedirectResponse,
             response_model=None)
async def new_password(request: Request, session: SessionDep) -> Response:
    step = await _step_form(request, session, officers.PASSWORD_STAGE, "officer.password_change")
    if isinstance(step, Response):
        return step
    pending, form, nxt = step
    try:
        data = PasswordChange(new_password=form.get("new_password", ""), confirm=form.get("confirm", ""))
    except ValueError:
        return _step_again(officers.PASSWORD_STAGE, "password-invalid", nxt)
    result = await officers.choose_password(session, services(request).settings, pending, data)
    if isinstance(result, officers.Refused):
        if result.reason == "password-reused":
            return _step_again(officers.PASSWORD_STAGE, result.reason, nxt)
        return _again("step", nxt)
    return _onward(request, result, nxt)


@router.get(STEPS[officers.TOTP_STAGE], name="console.signin_totp_form", response_class=HTMLResponse,
            response_model=None)
async def totp_form(request: Request, session: SessionDep, error: str | None = None,
                    next: str | None = None) -> Response:
    """An officer whose agency requires a second factor and who has none enrols one: the secret as
    text and as a QR code drawn on the server, confirmed by a code of it."""
    return await _step_page(request, session, officers.TOTP_STAGE, error, next)


@router.post(STEPS[officers.TOTP_STAGE], name="console.signin_totp", response_class=RedirectResponse,
             response_model=None)
async def totp_enrol(request: Request, session: SessionDep) -> Response:
    step = await _step_form(request, session, officers.TOTP_STAGE, "officer.totp_enrol")
    if isinstance(step, Response):
        return step
    pending, form, nxt = step
    result = await officers.enrol_totp(session, services(request).settings, pending, form.get("code"))
    if isinstance(result, officers.Refused):
        if result.reason == "second-factor":
            return _step_again(officers.TOTP_STAGE, result.reason, nxt)
        return _again("locked" if result.reason == "locked" else "step", nxt)
    return _onward(request, result, nxt)


@router.post("/console/keluar", name="console.signout", response_class=RedirectResponse, response_model=None)
async def signout(request: Request, officer: Officer, session: SessionDep) -> Response:
    await _form(request, officer)
    await officers.sign_out(session, request.cookies.get(SESSION_COOKIE))
    reply = RedirectResponse(SIGNIN, status_code=303, headers=_HEADERS)
    reply.delete_cookie(SESSION_COOKIE, path="/")
    return reply


# --- pages -----------------------------------------------------------------------------------


@router.get("/console", name="console.home", response_class=HTMLResponse, response_model=None)
async def home(request: Request, officer: Officer, session: SessionDep) -> Response:
    audit.record(session, "console.home", resource_type="officer", resource_id=str(officer.officer_id))
    return render(request, "home.html", officer, scopes=sorted(officer.caller.scopes))


def _period(request: Request) -> console.Period | None:
    return console.period_of(request.query_params.get("dari"), request.query_params.get("sampai"))


async def _grid(request: Request, officer: officers.Console, session: SessionDep) -> console.Grid:
    threshold = services(request).settings.suppression_threshold
    period = _period(request) or await console.default_period(session, officer.caller, threshold)
    return await console.returnee_grid(session, officer.caller, period, threshold)


async def _district_referrals(request: Request, officer: officers.Console,
                              session: SessionDep) -> console.DistrictReferrals:
    """The referrals open now by district, and how many are overdue (whatever the period)."""
    return await console.referrals_by_district(session, officer.caller,
                                               services(request).settings.suppression_threshold)


@router.get("/console/ringkasan", name="console.overview", response_class=HTMLResponse, response_model=None)
async def overview(request: Request, officer: Officer, session: SessionDep) -> Response:
    """The province's overview: returnees by district and month, suspected victims and notices not
    yet acknowledged per district; open and overdue referrals per district, and referrals per
    receiving agency; the register by kecamatan."""
    _need(officer, Scope.stats_read)
    grid = await _grid(request, officer, session)
    threshold = services(request).settings.suppression_threshold
    series = [(f"{d} {console.region_name(d)}", [grid.cells[(d, m)] or 0 for m in grid.months])
              for d in grid.districts if grid.row_total(d) > 0]
    t = i18n.translator(_lang(request))
    chart = charts.stacked_bars(grid.months, series, title=t("chart_title"))
    unacked = (await console.unacknowledged_by_district(session, officer.caller)
               if officer.caller.has(Scope.notices_read) else None)
    by_district = await _district_referrals(request, officer, session)
    refs = await console.referral_rows(session, officer.caller, grid.period, threshold)
    district = _register_district(request, officer)
    reg = await console.register_counts(session, officer.caller, district, _register_threshold(request))
    return render(request, "overview.html", officer, grid=grid, chart=chart, legend=charts.legend([s[0] for s in series]),
                  unacked=unacked, referral_rows=refs, district_referrals=by_district,
                  download_query=urlencode({"dari": grid.period.first, "sampai": grid.period.last}),
                  register=reg, register_columns=console.REGISTER_COLUMNS,
                  register_districts=console.districts_of(officer.caller),
                  register_query=urlencode({"kabupaten": district}))


def _register_district(request: Request, officer: officers.Console) -> str:
    """The register's district: the filter's (``?kabupaten=``) if the jurisdiction covers it,
    else the jurisdiction's first district."""
    allowed = console.districts_of(officer.caller)
    chosen = request.query_params.get("kabupaten")
    if chosen in allowed:
        return str(chosen)
    return allowed[0] if allowed else officer.caller.jurisdiction[:5]


def _register_threshold(request: Request) -> int:
    return stats.effective_threshold(services(request).settings.suppression_threshold, None)


@router.get("/console/ringkasan/register.{fmt}", name="console.register_download", response_class=Response,
            response_model=None)
async def register_download(request: Request, officer: Officer, session: SessionDep, fmt: str) -> Response:
    """The register of migrant workers of one district by kecamatan as CSV or XLSX (the figures of
    ``GET /v1/register/counts?by=subdistrict``)."""
    _need(officer, Scope.stats_read)
    if fmt not in ("csv", "xlsx"):
        raise NotFound("csv or xlsx")
    district = _register_district(request, officer)
    reg = await console.register_counts(session, officer.caller, district, _register_threshold(request))
    name = downloads.register_filename(district, clock.now(), fmt)
    audit.record(session, "console.download", resource_type="stats", format=fmt, table="register",
                 district=district)
    if fmt == "csv":
        body, media = downloads.register_csv(reg), downloads.CSV_TYPE
    else:
        body, media = downloads.register_xlsx(reg, officer.caller.agency, clock.now()), downloads.XLSX_TYPE
    return Response(body, media_type=media, headers={**_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/console/ringkasan/unduh.{fmt}", name="console.download", response_class=Response, response_model=None)
async def download(request: Request, officer: Officer, session: SessionDep, fmt: str) -> Response:
    """The overview's returnees by district and month as CSV, or as XLSX with the open and overdue
    referrals by district on a sheet of their own (a CSV holds one table: that one is
    ``rujukan.csv``)."""
    _need(officer, Scope.stats_read)
    if fmt not in ("csv", "xlsx"):
        raise NotFound("csv or xlsx")
    grid = await _grid(request, officer, session)
    name = downloads.filename(grid, fmt)
    audit.record(session, "console.download", resource_type="stats", format=fmt, period=[grid.period.first,
                                                                                          grid.period.last])
    if fmt == "csv":
        body, media = downloads.to_csv(grid), downloads.CSV_TYPE
    else:
        by_district = await _district_referrals(request, officer, session)
        body, media = downloads.to_xlsx(grid, officer.caller.agency, clock.now(), by_district), downloads.XLSX_TYPE
    return Response(body, media_type=media, headers={**_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/console/ringkasan/rujukan.{fmt}", name="console.referrals_download", response_class=Response,
            response_model=None)
async def referrals_download(request: Request, officer: Officer, session: SessionDep, fmt: str) -> Response:
    """The overview's referrals open now and overdue by district as CSV or XLSX (the figures of
    ``GET /v1/stats/referrals?group_by=district&open=true``)."""
    _need(officer, Scope.stats_read)
    if fmt not in ("csv", "xlsx"):
        raise NotFound("csv or xlsx")
    table = await _district_referrals(request, officer, session)
    name = downloads.referrals_filename(table, fmt)
    audit.record(session, "console.download", resource_type="stats", format=fmt, table="referrals_by_district",
                 as_of=table.as_of.isoformat())
    if fmt == "csv":
        body, media = downloads.referrals_csv(table), downloads.CSV_TYPE
    else:
        body, media = downloads.referrals_xlsx(table, officer.caller.agency, clock.now()), downloads.XLSX_TYPE
    return Response(body, media_type=media, headers={**_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/console/pekan", name="console.week", response_class=HTMLResponse, response_model=None)
async def week(request: Request, officer: Officer, session: SessionDep) -> Response:
    """A district office's week: notices to acknowledge, referrals due and overdue, with the actions."""
    _need(officer, Scope.notices_read, Scope.referrals_read, Scope.manifests_read)
    data = await console.week(session, officer.caller)
    people = await console.week_people(session, officer.caller) if officer.caller.has(Scope.manifests_read) else None
    villages: dict[str, list[tuple[str, str]]] = {}
    if people is not None and officer.caller.has(Scope.manifests_locate):
        for p in people["arrived_not_located"] + people["not_located_after_7_days"]:
            origin = p["origin_subdistrict"] or p["origin_district"]
            if origin and origin not in villages:
                villages[origin] = console.villages_of(origin)
    return render(request, "week.html", officer, week=data, moves={r.id: console.moves_for(officer.caller, r)
                                                                   for r in data.referrals},
                  overdue=console.overdue, follow_up_actions=[a.value for a in FollowUpAction],
                  today=clock.now().date().isoformat(), can_ack=officer.caller.has(Scope.notices_ack),
                  people=people, week_views=console.WEEK_VIEWS, villages=villages,
                  can_locate=officer.caller.has(Scope.manifests_locate))


@router.get("/console/rujukan", name="console.referrals", response_class=HTMLResponse, response_model=None)
async def referrals_page(request: Request, officer: Officer, session: SessionDep) -> Response:
    """The referrals the agency received (the police's desk), open ones first by due time."""
    _need(officer, Scope.referrals_read)
    refs = await console.all_referrals(session, officer.caller, role="received")
    return render(request, "referrals.html", officer, referrals=refs,
                  moves={r.id: console.moves_for(officer.caller, r) for r in refs}, overdue=console.overdue)


# --- actions ---------------------------------------------------------------------------------


def _refused(session: SessionDep, exc: Problem, action: str, resource_type: str, resource_id: uuid.UUID | None,
             invalid: str = "err_invalid") -> str:
    """A refusal the page explains: its entry in the chain (the request itself succeeds). The
    message is the problem's own where the console has words for it (``err_<slug>``)."""
    audit.record(session, action, outcome=Outcome.denied, resource_type=resource_type, resource_id=resource_id,
                 reason=exc.slug, problem=text_rules.bounded(exc.detail, text_rules.MAX_DETAIL_TEXT))
    specific = "err_" + exc.slug.replace("-", "_")
    if specific in i18n.WORDS:
        return specific
    if isinstance(exc, PreconditionFailed | PreconditionRequired):
        return "err_stale"
    if isinstance(exc, Forbidden | access.OutsideJurisdiction):
        return "err_forbidden"
    if isinstance(exc, Conflict):
        return "err_conflict"
    if isinstance(exc, NotFound):
        return "err_not_found"
    return invalid


@router.post("/console/pemberitahuan/{id}/konfirmasi", name="console.acknowledge",
             response_class=RedirectResponse, response_model=None)
async def acknowledge(request: Request, officer: Officer, session: SessionDep, id: uuid.UUID) -> Response:
    form = await _form(request, officer)
    try:
        await notices.acknowledge(session, officer.caller, id, form.get("etag"))
    except (PreconditionFailed, PreconditionRequired, Conflict, Forbidden, NotFound, ValidationFailed) as exc:
        return _back(form, _refused(session, exc, "notice.acknowledge", "notice", id))
    return _back(form, "ok_acknowledged")


@router.post("/console/pemberitahuan/{id}/tindak-lanjut", name="console.follow_up",
             response_class=RedirectResponse, response_model=None)
async def follow_up(request: Request, officer: Officer, session: SessionDep, id: uuid.UUID) -> Response:
    form = await _form(request, officer)
    try:
        body = FollowUpCreate.model_validate({"action": form.get("action"), "note": form.get("note") or None,
                                              "occurred_on": form.get("occurred_on")})
    except ValueError:
        return _back(form, _refused(session, ValidationFailed("follow-up"), "notice.follow_up", "notice", id))
    try:
        await notices.record_follow_up(session, officer.caller, id, body)
    except (Conflict, Forbidden, NotFound, ValidationFailed) as exc:
        return _back(form, _refused(session, exc, "notice.follow_up", "notice", id))
    return _back(form, "ok_follow_up")


@router.post("/console/rujukan/{id}/status", name="console.transition",
             response_class=RedirectResponse, response_model=None)
async def transition(request: Request, officer: Officer, session: SessionDep, id: uuid.UUID) -> Response:
    form = await _form(request, officer)
    try:
        action = Action(form.get("action", ""))
    except ValueError:
        return _back(form, _refused(session, ValidationFailed("action"), "referral.transition", "referral", id))
    try:
        await referrals.transition(session, officer.caller, id, action, form.get("note") or None, form.get("etag"))
    except (PreconditionFailed, PreconditionRequired, Conflict, Forbidden, NotFound, ValidationFailed) as exc:
        return _back(form, _refused(session, exc, "referral.transition", "referral", id))
    return _back(form, "ok_moved")


@router.post("/console/kedatangan/{manifest_id}/orang/{person_id}/hasil", name="console.locate",
             response_class=RedirectResponse, response_model=None)
async def locate(request: Request, officer: Officer, session: SessionDep, manifest_id: uuid.UUID,
                 person_id: uuid.UUID) -> Response:
    """An arrived person ``located`` (desa, who saw them, when) or ``not_located``: the service of
    ``POST /v1/manifests/{id}/persons/{person_id}/outcome``, with the ETag shown as ``If-Match``."""
    form = await _form(request, officer)
    if not officer.caller.has(Scope.manifests_locate):
        return _back(form, _refused(session, Forbidden(Scope.manifests_locate), "manifest.person_outcome",
                                    "manifest_person", person_id))
    try:
        body = OutcomeIn.model_validate({"outcome": form.get("outcome"), "village": form.get("village") or None,
                                         "seen_by": form.get("seen_by") or None, "seen_on": form.get("seen_on"),
                                         "note": form.get("note") or None})
    except ValueError:
        return _back(form, _refused(session, ValidationFailed("outcome"), "manifest.person_outcome",
                                    "manifest_person", person_id))
    try:
        await manifests.record_outcome(session, officer.caller, manifest_id, person_id, form.get("etag"), body)
    except (PreconditionFailed, PreconditionRequired, Conflict, Forbidden, NotFound, ValidationFailed,
            access.OutsideJurisdiction) as exc:
        return _back(form, _refused(session, exc, "manifest.person_outcome", "manifest_person", person_id))
    return _back(form, "ok_located" if body.outcome == "located" else "ok_not_located")


# --- the officer's own account -----------------------------------------------------------------

SECURITY = "/console/keamanan"


@router.get(SECURITY, name="console.security", response_class=HTMLResponse, response_model=None)
async def security(request: Request, officer: Officer, session: SessionDep) -> Response:
    """The officer's own account: change the password, (re-)enrol the second factor."""
    audit.record(session, "console.security", resource_type="officer", resource_id=str(officer.officer_id))
    candidate = await officers.own_totp_candidate(session, services(request).settings, officer)
    values: dict[str, Any] = {}
    if candidate is not None:
        t = i18n.translator(_lang(request))
        values = {"secret": qr.grouped(candidate), "qr": qr.svg(officers.totp_uri(candidate, officer.email),
                                                                t("qr_label"))}
    return render(request, "security.html", officer, **values)


def _own_result(refused: officers.Refused | None, ok: str) -> Response:
    return _goto(SECURITY, ok if refused is None else "err_" + refused.reason.replace("-", "_"))


@router.post(SECURITY + "/sandi", name="console.security_password", response_class=RedirectResponse,
             response_model=None)
async def security_password(request: Request, officer: Officer, session: SessionDep) -> Response:
    """A new password of the officer's own (the current one asked again); their other sessions end."""
    form = await _form(request, officer)
    if await _too_many(request, session, "officer.password_change"):
        return _goto(SECURITY, "err_rate")
    try:
        data = PasswordChange(new_password=form.get("new_password", ""), confirm=form.get("confirm", ""))
    except ValueError:
        audit.record(session, "officer.password_change", outcome=Outcome.denied, resource_type="officer",
                     resource_id=str(officer.officer_id), reason="password-invalid")
        return _goto(SECURITY, "err_password_invalid")
    refused = await officers.change_own_password(session, services(request).settings, officer,
                                                 form.get("password", ""), data)
    return _own_result(refused, "ok_password_changed")


@router.post(SECURITY + "/totp/mulai", name="console.security_totp_start", response_class=RedirectResponse,
             response_model=None)
async def security_totp_start(request: Request, officer: Officer, session: SessionDep) -> Response:
    """A new secret to enrol, shown on the account page until a code confirms it."""
    await _form(request, officer)
    await officers.start_own_totp(session, services(request).settings, officer)
    return RedirectResponse(SECURITY + "#totp", status_code=303, headers=_HEADERS)


@router.post(SECURITY + "/totp", name="console.security_totp", response_class=RedirectResponse,
             response_model=None)
async def security_totp(request: Request, officer: Officer, session: SessionDep) -> Response:
    """The new secret becomes the officer's second factor (their password and a code of it
    confirm it); their other sessions end."""
    form = await _form(request, officer)
    if await _too_many(request, session, "officer.totp_enrol"):
        return _goto(SECURITY, "err_rate")
    refused = await officers.confirm_own_totp(session, services(request).settings, officer,
                                              form.get("password", ""), form.get("code"))
    return _own_result(refused, "ok_totp_enrolled")


# --- the agency's officers ("Petugas", officers:manage) -----------------------------------------

OFFICERS = "/console/petugas"
# what a manager's action may be refused with (the API's problems for the same rules)
_OFFICER_REFUSALS = (Conflict, Forbidden, NotFound, ValidationFailed)


@router.get(OFFICERS, name="console.officers", response_class=HTMLResponse, response_model=None)
async def officers_page(request: Request, officer: Officer, session: SessionDep) -> Response:
    """The agency's officers (as ``GET /v1/agencies/{code}/officers``), with the form to add one
    and each one's actions."""
    _need(officer, Scope.officers_manage)
    accounts = await officers.all_officers(session, officer.caller.agency, by=officer.caller)
    grantable = sorted(await officers.agency_scopes(session, officer.caller.agency) - {Scope.admin})
    return render(request, "officers.html", officer, accounts=accounts, grantable=grantable,
                  me=officer.officer_id, now=clock.now())


def _one_time(request: Request, officer: officers.Console, email: str, password: str | None = None,
              uri: str | None = None) -> Response:
    """What a manager hands on to the officer, shown in this reply only (never stored, never cached)."""
    values: dict[str, Any] = {}
    if uri is not None:
        t = i18n.translator(_lang(request))
        values = {"uri": uri, "secret": qr.grouped(qr.otpauth_secret(uri)), "qr": qr.svg(uri, t("qr_label"))}
    return render(request, "officer_secret.html", officer, email=email, password=password, **values)


@router.post(OFFICERS, name="console.officer_create", response_class=HTMLResponse, response_model=None)
async def officer_create(request: Request, officer: Officer, session: SessionDep) -> Response:
    """A new officer of the agency (``POST /v1/agencies/{code}/officers``): the one-time password
    and the second factor's URI are shown once."""
    form = await _form(request, officer)
    _need(officer, Scope.officers_manage)
    scopes = [v for v in (await request.form()).getlist("scopes") if isinstance(v, str)]
    try:
        data = OfficerCreate(email=form.get("email", ""), name=form.get("name", ""), scopes=scopes)
    except ValueError:
        return _goto(OFFICERS, _refused(session, ValidationFailed("officer"), "officer.create", "officer", None,
                                        invalid="err_officer_invalid"))
    try:
        created = await officers.create_officer(session, officer.caller.agency, data, by=officer.caller)
    except _OFFICER_REFUSALS as exc:
        return _goto(OFFICERS, _refused(session, exc, "officer.create", "officer", None, invalid="err_officer_invalid"))
    return _one_time(request, officer, created.email, created.password, created.totp_uri)


@router.post(OFFICERS + "/{id}/status", name="console.officer_status", response_class=RedirectResponse,
             response_model=None)
async def officer_status(request: Request, officer: Officer, session: SessionDep, id: uuid.UUID) -> Response:
    """Disable (every session of the officer ends at once) or enable again."""
    form = await _form(request, officer)
    _need(officer, Scope.officers_manage)
    disabled = form.get("disabled") == "1"
    try:
        await officers.update_officer(session, officer.caller.agency, id, OfficerUpdate(disabled=disabled),
                                      by=officer.caller)
    except _OFFICER_REFUSALS as exc:
        return _goto(OFFICERS, _refused(session, exc, "officer.update", "officer", id))
    return _goto(OFFICERS, "ok_officer_disabled" if disabled else "ok_officer_enabled")


@router.post(OFFICERS + "/{id}/sandi", name="console.officer_password_reset", response_class=HTMLResponse,
             response_model=None)
async def officer_password_reset(request: Request, officer: Officer, session: SessionDep, id: uuid.UUID) -> Response:
    """A new one-time password, shown once (``POST /v1/agencies/{code}/officers/{id}/password``)."""
    await _form(request, officer)
    _need(officer, Scope.officers_manage)
    try:
        reset = await officers.reset_password(session, officer.caller.agency, id, by=officer.caller)
    except _OFFICER_REFUSALS as exc:
        return _goto(OFFICERS, _refused(session, exc, "officer.password_reset", "officer", id))
    return _one_time(request, officer, reset.email, password=reset.password)


@router.post(OFFICERS + "/{id}/totp", name="console.officer_totp_reset", response_class=HTMLResponse,
             response_model=None)
async def officer_totp_reset(request: Request, officer: Officer, session: SessionDep, id: uuid.UUID) -> Response:
    """A new TOTP secret shown once, or none (``mode=at_sign_in``: the officer enrols at the next
    sign-in), as ``POST /v1/agencies/{code}/officers/{id}/totp``."""
    form = await _form(request, officer)
    _need(officer, Scope.officers_manage)
    try:
        issued = await officers.reset_totp(session, officer.caller.agency, id,
                                           TotpReset(enrol_at_sign_in=form.get("mode") == "at_sign_in"),
                                           by=officer.caller)
    except _OFFICER_REFUSALS as exc:
        return _goto(OFFICERS, _refused(session, exc, "officer.totp_reset", "officer", id))
    if issued.totp_uri is None:
        return _goto(OFFICERS, "ok_totp_at_signin")
    return _one_time(request, officer, issued.email, uri=issued.totp_uri)


# --- the Inspektorat -------------------------------------------------------------------------


@router.get("/console/audit", name="console.audit", response_class=HTMLResponse, response_model=None)
async def audit_page(request: Request, officer: Officer, session: SessionDep) -> Response:
    """Search the agency's audit chain (as ``GET /v1/audit``), verify it (with a checkpoint)."""
    _need(officer, Scope.audit_read)
    svc = services(request)
    q = request.query_params
    key = audit_service.chain_for(officer.caller, None)
    within = audit_service.within(officer.caller)
    filters = {name: (q.get(name) or "").strip()[:100] or None
               for name in ("actor", "agency", "action", "resource_id")}
    try:
        after = AUDIT.open(svc.settings, q.get("cursor") or None)
    except Problem:
        after = None
    page = await audit_repository.list_events(
        session, chain=key, after=after, limit=50, client_id=filters["actor"], agency=filters["agency"],
        action=filters["action"], resource_id=filters["resource_id"], within=within)
    audit.record(session, "audit.list", resource_type="audit_chain", resource_id=key, within=within,
                 filters={k: v for k, v in filters.items() if v})
    entries = [AuditEventPublic.of(e) for e in page.items]
    next_cursor = AUDIT.seal(svc.settings, page.next)
    result = None
    if q.get("verify"):
        try:
            v, _expect = await audit_service.verify(session, svc.keys, svc.settings.issuer, key,
                                                    (q.get("checkpoint") or "").strip() or None)
        except audit.BadCheckpoint:
            result = {"ok": False, "seq": 0, "reason": "checkpoint", "checked": 0}
        else:
            result = {"ok": v.ok, "seq": v.first_bad_seq if not v.ok else v.head_seq, "reason": v.reason,
                      "checked": v.checked}
    more = urlencode({**{k: v for k, v in filters.items() if v}, "cursor": next_cursor}) if next_cursor else None
    return render(request, "audit.html", officer, entries=entries, filters=filters, result=result, more=more,
                  chain=key)


@router.get("/console/audit/titik-periksa", name="console.checkpoint", response_class=Response, response_model=None)
async def checkpoint(request: Request, officer: Officer, session: SessionDep) -> Response:
    """A signed checkpoint of the chain's head, as a file to keep outside Sinergi."""
    _need(officer, Scope.audit_read)
    svc = services(request)
    key = audit_service.chain_for(officer.caller, None)
    cp, signed = await audit_service.checkpoint(session, svc.keys, svc.settings.issuer, key)
    body = orjson.dumps({"chain": cp.chain, "seq": cp.seq, "hash": cp.hash, "checkpoint": signed,
                         "taken_at": datetime.fromtimestamp(cp.issued_at, UTC).isoformat()},
                        option=orjson.OPT_INDENT_2)
    name = f"titik-periksa-audit-{key}-{cp.seq}.json"
    return Response(body, media_type="application/json",
                    headers={**_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


__all__ = ["install", "router"]
