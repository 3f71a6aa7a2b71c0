"""Recruitment reports, the alerts they raise, and the public warning list.

An agency reports a recruitment it learnt of (:func:`report`): the modus, where (a region it may
write for, :func:`api.core.access.check_write`), the route and places, the recruiter's
identifiers, and the returnees who named the recruiter (each one the caller may read, with the
relation, HTCDS ``rec_``). Identifiers are stored only encrypted (context ``recruiter.<kind>``)
with a keyed blind index of their normalised form, so the same phone number reported by two
agencies matches without either seeing the other's report.

When an identifier's reports come from at least ``alert_threshold`` distinct agencies
(``SINERGI_ALERT_THRESHOLD``) an alert is raised: ``alert.raised`` on the feed (and so the
webhooks), addressed to the agencies :func:`api.core.access.is_alerted` names for the regions of
its reports (police and task force over them) and seen by them only; a further agency reporting
it emits ``alert.updated`` to the same rule. The events carry no identifier and no person.

The public warning list (:func:`warnings`) names a modus and a place reported by at least as
many agencies, and nothing else: no person, no identifier, no free text.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.alerts import repository
from api.alerts.schemas import MODUS_LABELS, ReportIn
from api.core import access, audit, clock, crypto, outbox
from api.core.context import Caller
from api.core.errors import ValidationFailed
from api.core.pagination import Position
from api.core.scopes import Scope
from api.core.unit import unit_of
from api.returnees import repository as returnees
from models import (
    IdentifierKind,
    RecruiterIdentifier,
    RecruiterLink,
    RecruitmentAlert,
    RecruitmentModus,
    RecruitmentReport,
)
from models.regions import regions

RESOURCE = "recruitment_report"


def _cipher(session: AsyncSession, kind: IdentifierKind | str) -> crypto.FieldCipher:
    settings = unit_of(session).settings
    context = f"recruiter.{kind}"
    return crypto.FieldCipher(data_key=settings.data_key_bytes, index_key=settings.index_key_bytes,
                              context=context, index_context=context)


async def report(session: AsyncSession, caller: Caller, body: ReportIn) -> dict[str, Any]:
    """Record a report; raise or update the alerts of its identifiers; audited (the returnees
    named and the identifiers written are personal data)."""
    access.check_write(caller, body.region, "region")
    wanted = [n.returnee_id for n in body.named_by]
    visible = await returnees.readable_origins(session, caller, wanted) if wanted else {}
    missing = [i for i, rid in enumerate(wanted) if rid not in visible]
    if missing:
        raise ValidationFailed("See 'errors' for the fields at fault", errors=[
            {"field": f"named_by.{i}.returnee_id", "message": "no such returnee in your view"} for i in missing])
    now = clock.now()
    rep = RecruitmentReport(reporting_agency=caller.agency, region=body.region, modus=body.modus, route=body.route,
                            places=body.places, place_note=body.place_note,
                            destination_country=body.destination_country, observed_on=body.observed_on,
                            created_at=now)
    session.add(rep)
    await session.flush()
    pairs: list[tuple[str, str]] = []
    for ident in body.identifiers:
        cipher = _cipher(session, ident.kind)
        index = cipher.blind_index(ident.value)
        if (str(ident.kind), index) in pairs:
            continue
        pairs.append((str(ident.kind), index))
        session.add(RecruiterIdentifier(report_id=rep.id, kind=ident.kind, value_enc=cipher.encrypt(ident.value),
                                        value_index=index))
    for named in body.named_by:
        session.add(RecruiterLink(report_id=rep.id, returnee_id=named.returnee_id, relationship=named.relationship))
    await session.flush()
    raised = await _raise_alerts(session, pairs)
    audit.record(session, "recruitment.report.create", resource_type=RESOURCE, resource_id=rep.id,
                 subjects=[*(("returnee", n.returnee_id) for n in body.named_by), *(("alert", a) for a in raised)],
                 identifiers=len(pairs), modus=str(body.modus), region=body.region)
    return {
        "id": rep.id, "reporting_agency": rep.reporting_agency, "modus": rep.modus, "region": rep.region,
        "route": rep.route, "places": rep.places, "place_note": rep.place_note,
        "destination_country": rep.destination_country, "observed_on": rep.observed_on,
        "identifier_kinds": [k for k, _ in pairs],
        "named_by": [{"returnee_id": n.returnee_id, "relationship": n.relationship} for n in body.named_by],
        "created_at": rep.created_at,
    }


async def _raise_alerts(session: AsyncSession, pairs: list[tuple[str, str]]) -> list[uuid.UUID]:
    """Raise (or reinforce) the alert of each identifier now reported by enough distinct agencies;
    the ids of the alerts raised or updated."""
    threshold = unit_of(session).settings.alert_threshold
    sources = await repository.sources_of(session, pairs)
    agencies = None
    touched = []
    now = clock.now()
    for kind, index in pairs:
        s = sources.get((kind, index))
        if s is None or len(s.agencies) < threshold:
            continue
        alert = await repository.alert_of(session, kind, index)
        if alert is not None and alert.sources == len(s.agencies):
            continue  # the same agency reported it again: nothing new to tell
        if alert is None:
            alert = RecruitmentAlert(kind=IdentifierKind(kind), value_index=index, value_enc=s.value_enc,
                                     sources=len(s.agencies), raised_at=now, updated_at=now)
            event = "alert.raised"
        else:
            alert.sources, alert.updated_at = len(s.agencies), now
            event = "alert.updated"
        session.add(alert)
        await session.flush()
        if agencies is None:
            agencies = await repository.alerted_agencies(session)
        audience = [code for code, akind, jurisdiction in agencies if access.is_alerted(akind, jurisdiction, s.regions)]
        regions_sorted = sorted(s.regions)
        outbox.emit(session, event, {"id": str(alert.id), "kind": kind, "sources": alert.sources,
                                     "modus": sorted(s.modus), "regions": regions_sorted},
                    region=regions_sorted[0], audience=audience)
        touched.append(alert.id)
    return touched


def _alert_public(a: RecruitmentAlert, s: repository.Sources | None, readable: set[uuid.UUID], *, pii: bool,
                  data_key: bytes) -> dict[str, Any]:
    value, on_file = crypto.disclose(a.value_enc, pii=pii, context=f"recruiter.{a.kind}", key=data_key)
    return {
        "id": a.id, "kind": a.kind, "value": value, "value_on_file": on_file, "sources": a.sources,
        "reporting_agencies": sorted(s.agencies) if s else [], "modus": sorted(s.modus) if s else [],
        "regions": sorted(s.regions) if s else [], "reports": s.reports if s else 0,
        "named_by": sorted(r for r in (s.returnees if s else set()) if r in readable),
        "raised_at": a.raised_at, "updated_at": a.updated_at,
    }


async def _shape(session: AsyncSession, caller: Caller, alerts: list[RecruitmentAlert]) -> list[dict[str, Any]]:
    sources = await repository.sources_of(session, [(str(a.kind), a.value_index) for a in alerts])
    named = sorted({r for s in sources.values() for r in s.returnees})
    readable = set(await returnees.readable_origins(session, caller, named)) if named else set()
    pii = caller.has(Scope.pii_read)
    key = unit_of(session).settings.data_key_bytes
    return [_alert_public(a, sources.get((str(a.kind), a.value_index)), readable, pii=pii, data_key=key)
            for a in alerts]


async def list_alerts(session: AsyncSession, caller: Caller, *, after: Position | None,
                      limit: int) -> tuple[list[dict[str, Any]], Position | None]:
    page = await repository.alerts_page(session, caller, after=after, limit=limit)
    items = await _shape(session, caller, page.items)
    audit.record(session, "alert.list", resource_type="alert", subjects=[("alert", a.id) for a in page.items],
                 pii=caller.has(Scope.pii_read), count=len(items))
    return items, page.next


async def read_alert(session: AsyncSession, caller: Caller, alert_id: uuid.UUID) -> dict[str, Any]:
    alert = await repository.get_alert(session, caller, alert_id)
    (item,) = await _shape(session, caller, [alert])
    audit.record(session, "alert.read", resource_type="alert", resource_id=alert.id,
                 subjects=[("returnee", r) for r in item["named_by"]], pii=caller.has(Scope.pii_read))
    return item


def _place(code: str) -> dict[str, Any]:
    region = regions().get(code)
    return {"code": code, "name": region.name if region else None}


async def warnings(session: AsyncSession, *, after: Position | None,
                   limit: int) -> tuple[list[dict[str, Any]], Position | None]:
    """The public warning list: modus and places reported by enough independent agencies."""
    threshold = unit_of(session).settings.alert_threshold
    groups, nxt = await repository.warning_groups(session, threshold, after=after, limit=limit)
    items = [{
        "modus": g.modus, "description": MODUS_LABELS[RecruitmentModus(g.modus)], "region": _place(g.region),
        "route": [_place(c) for c in g.route], "destination_countries": g.countries,
        "first_reported": f"{g.first:%Y-%m}", "last_reported": f"{g.last:%Y-%m}",
    } for g in groups]
    return items, nxt
