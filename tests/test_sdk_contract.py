"""The client's models and calls against the service's own OpenAPI document: a change of the
server that would break the client (a field renamed, retyped, made required, an enumeration
grown, a query parameter dropped) fails here.

For each operation the client calls: the path and method exist; every query parameter it
sends is declared; its request model's fields exist in the server's body schema with types
the server accepts, and every field the server requires is in the model; its reply model's
fields exist in the server's reply schema (the item schema, for a list) and accept every type
the server may send, and every field the server always sends is in the model. Nested models
are compared the same way, field by field.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from api.app import create_app
from api.core.settings import Settings
from sinergi_client import models as m

# (method, path, query parameters the client sends, request model, reply model)
CALLS: list[tuple[str, str, list[str], type[BaseModel] | None, type[BaseModel] | None]] = [
    ("post", "/v1/returnees/batch", ["notify"], m.ReturneeRecord, m.BatchResult),
    ("get", "/v1/returnees", ["district", "returned_from", "returned_to", "trafficking_status", "updated_since",
                              "sort", "limit", "cursor"], None, m.Returnee),
    ("get", "/v1/returnees/{id}", [], None, m.Returnee),
    ("post", "/v1/notices", [], m.NoticeCreate, m.Notice),
    ("get", "/v1/notices", ["acknowledged", "district", "sort", "limit", "cursor"], None, m.NoticeSummary),
    ("get", "/v1/notices/{id}", [], None, m.Notice),
    ("post", "/v1/notices/{id}/acknowledge", [], None, m.Notice),
    ("post", "/v1/notices/{id}/follow-ups", [], m.FollowUpCreate, m.FollowUp),
    ("post", "/v1/referrals", [], m.ReferralCreate, m.Referral),
    ("get", "/v1/referrals", ["role", "status", "reason", "urgency", "overdue", "updated_since", "returnee_id",
                              "sort", "limit", "cursor"], None, m.ReferralSummary),
    ("get", "/v1/referrals/{id}", [], None, m.Referral),
    ("get", "/v1/referrals/{id}/returnee", [], None, m.ReferredReturnee),
    ("post", "/v1/referrals/{id}/transitions", [], m.TransitionIn, m.Referral),
    ("get", "/v1/stats/returnees", ["group_by", "threshold", "from", "to", "district", "return_type",
                                    "trafficking_status"], None, m.Stats),
    ("get", "/v1/stats/referrals", ["group_by", "threshold", "from", "to", "status", "to_agency", "reason",
                                    "urgency", "district", "open"], None, m.Stats),
    ("get", "/v1/audit", ["actor", "agency", "resource_type", "resource_id", "action", "from", "to", "chain",
                          "limit", "cursor"], None, m.AuditEvent),
    ("get", "/v1/audit/verify", ["chain", "checkpoint"], None, m.AuditVerification),
    ("get", "/v1/audit/checkpoint", ["chain"], None, m.Checkpoint),
    ("get", "/v1/events", ["after", "limit"], None, m.EventPage),
    ("post", "/v1/agencies", [], m.AgencyCreate, m.Agency),
    ("get", "/v1/agencies", ["limit", "cursor"], None, m.Agency),
    ("post", "/v1/agencies/{code}/clients", [], m.ClientCreate, m.ClientCreated),
    ("post", "/v1/agencies/{code}/clients/{client_id}/disable", [], None, None),
    ("get", "/v1/regions", ["parent", "level", "q", "limit", "cursor"], None, m.Region),
    ("get", "/v1/regions/{code}", [], None, m.RegionDetail),
    ("post", "/v1/manifests", [], m.ManifestCreate, m.Manifest),
    ("get", "/v1/manifests", ["limit", "cursor"], None, m.ManifestSummary),
    ("get", "/v1/manifests/persons", ["view", "district", "limit", "cursor"], None, m.ManifestPerson),
    ("get", "/v1/manifests/{id}", [], None, m.Manifest),
    ("post", "/v1/manifests/{id}/arrivals", [], m.ArrivalsIn, m.Manifest),
    ("get", "/v1/manifests/{id}/persons/{person_id}", [], None, m.ManifestPerson),
    ("post", "/v1/manifests/{id}/persons/{person_id}/outcome", [], m.OutcomeIn, m.ManifestPerson),
    ("post", "/v1/register/departures/batch", [], m.DepartureRecord, m.DepartureBatchResult),
    ("get", "/v1/register/persons", ["region", "status", "repeat_return", "limit", "cursor"], None, m.RegisterPerson),
    ("get", "/v1/register/persons/{person_id}", [], None, m.RegisterPersonDetail),
    ("get", "/v1/register/counts", ["district", "by", "threshold"], None, m.RegisterCounts),
    ("post", "/v1/alerts/reports", [], m.RecruitmentReportCreate, m.RecruitmentReport),
    ("get", "/v1/alerts", ["limit", "cursor"], None, m.Alert),
    ("get", "/v1/alerts/{alert_id}", [], None, m.Alert),
    ("get", "/v1/public/warnings", ["limit", "cursor"], None, m.PublicWarning),
]
# Batches: the client's model is one record of the body's ``records``.
RECORDS: tuple[type[BaseModel], ...] = (m.ReturneeRecord, m.DepartureRecord)
# The webhooks calls, checked once the service serves /v1/webhooks.
WEBHOOK_CALLS: list[tuple[str, str, list[str], type[BaseModel] | None, type[BaseModel] | None]] = [
    ("post", "/v1/webhooks", [], m.WebhookCreate, m.WebhookCreated),
    ("get", "/v1/webhooks", ["limit", "cursor"], None, m.Webhook),
    ("get", "/v1/webhooks/{id}", [], None, m.Webhook),
    ("delete", "/v1/webhooks/{id}", [], None, m.Webhook),
    ("post", "/v1/webhooks/{id}/enable", [], None, m.Webhook),
    ("get", "/v1/webhooks/{id}/deliveries", ["status", "limit", "cursor"], None, m.WebhookDelivery),
    ("post", "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", [], None, m.WebhookDelivery),
]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(mode="development")).openapi()


class Schemas:
    """Resolves ``$ref`` within one document (the server's, or a client model's ``$defs``)."""

    def __init__(self, doc: dict[str, Any], prefix: str) -> None:
        self.doc, self.prefix = doc, prefix

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].removeprefix(self.prefix)
            schema = self.doc[name]
        return schema

    def alternatives(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        schema = self.resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return [a for s in schema[key] for a in self.alternatives(s)]
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.alternatives(schema["allOf"][0])
        if "const" in schema:
            return [{"type": _json_type(schema["const"]), "enum": [schema["const"]]}]
        if "type" in schema and isinstance(schema["type"], list):
            return [dict(schema, type=t) for t in schema["type"]]
        return [schema]


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}[type(value)]


def _accepts(wide: dict[str, Any], narrow: dict[str, Any], ws: Schemas, ns: Schemas, where: str, mode: str,
             problems: list[str]) -> bool:
    """Whether every value of ``narrow`` is a value of ``wide`` (objects compared field by field)."""
    wt, nt = wide.get("type"), narrow.get("type")
    if wt is None and "enum" not in wide and "properties" not in wide:
        return True  # any
    if wt is None and "enum" in wide:
        wt = _json_type(wide["enum"][0])
    if nt is None and "enum" in narrow:
        nt = _json_type(narrow["enum"][0])
    if nt is None and "properties" not in narrow:
        return False  # any into something narrower
    if wt == "number" and nt in ("integer", "number"):
        return True
    if wt != nt and not (wt == "object" and "properties" in narrow) and not (nt == "object" and "properties" in wide):
        return False
    if "enum" in wide and not set(narrow.get("enum", [object()])) <= set(wide["enum"]):
        return False
    if wide.get("format") and wide.get("format") != narrow.get("format"):
        return False
    if wt == "array":
        return _fits(wide.get("items", {}), narrow.get("items", {}), ws, ns, where + "[]", mode, problems)
    if "properties" in wide and "properties" in narrow:
        server, client = (wide, narrow) if mode == "request" else (narrow, wide)
        sch_s, sch_c = (ws, ns) if mode == "request" else (ns, ws)
        problems += compare(server, client, sch_s, sch_c, mode, where)
    return True


def _fits(wide: dict[str, Any], narrow: dict[str, Any], ws: Schemas, ns: Schemas, where: str, mode: str,
          problems: list[str]) -> bool:
    nested: list[str] = []
    narrow_alts = [a for a in ns.alternatives(narrow) if not (mode == "request" and a.get("type") == "null")]
    for n in narrow_alts:
        if not any(_accepts(w, n, ws, ns, where, mode, nested) for w in ws.alternatives(wide)):
            return False
    problems += sorted(set(nested))
    return True


def compare(server: dict[str, Any], client: dict[str, Any], ss: Schemas, cs: Schemas, mode: str,
            where: str) -> list[str]:
    """``mode="reply"``: the client reads what the server sends; ``"request"``: the server takes
    what the client sends."""
    problems: list[str] = []
    s_props, c_props = server.get("properties", {}), client.get("properties", {})
    for name in c_props:
        if name not in s_props:
            problems.append(f"{where}.{name}: the client's field is not in the server's schema")
    for name in server.get("required", []):
        if name not in c_props:
            problems.append(f"{where}.{name}: the server requires it, the client model lacks it")
    for name, c_field in c_props.items():
        if name not in s_props:
            continue
        if mode == "reply":
            ok = _fits(c_field, s_props[name], cs, ss, f"{where}.{name}", mode, problems)
        else:
            ok = _fits(s_props[name], c_field, ss, cs, f"{where}.{name}", mode, problems)
        if not ok:
            problems.append(f"{where}.{name}: types differ (server {s_props[name]}, client {c_field})")
    return problems


def client_schema(model: type[BaseModel], mode: str) -> tuple[dict[str, Any], Schemas]:
    schema = model.model_json_schema(by_alias=True, mode="serialization" if mode == "request" else "validation")
    return schema, Schemas(schema.get("$defs", {}), "#/$defs/")


def check_call(doc: dict[str, Any], method: str, path: str, params: list[str], request: type[BaseModel] | None,
               reply: type[BaseModel] | None) -> list[str]:
    ss = Schemas(doc["components"]["schemas"], "#/components/schemas/")
    op = doc["paths"].get(path, {}).get(method)
    if op is None:
        return [f"{method.upper()} {path}: not in the server's document"]
    problems = []
    declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    problems += [f"{method.upper()} {path}: query parameter {p!r} not declared" for p in params if p not in declared]
    if request is not None:
        body = ss.resolve(op["requestBody"]["content"]["application/json"]["schema"])
        if request in RECORDS:
            body = ss.resolve(body["properties"]["records"]["items"])
        schema, cs = client_schema(request, "request")
        problems += compare(body, schema, ss, cs, "request", f"{path} body")
    if reply is not None:
        ok = next(r for code, r in op["responses"].items() if code.startswith("2"))
        body = ss.resolve(ok["content"]["application/json"]["schema"])
        if "items" in body.get("properties", {}) and reply is not m.EventPage:
            body = ss.resolve(body["properties"]["items"]["items"])  # a page: its items
            assert "next_cursor" in ss.resolve(doc["paths"][path][method]["responses"]["200"]["content"]
                                               ["application/json"]["schema"])["properties"]
        schema, cs = client_schema(reply, "reply")
        problems += compare(body, schema, ss, cs, "reply", f"{path} reply")
    return problems


@pytest.mark.parametrize("call", CALLS, ids=[f"{c[0]} {c[1]}" for c in CALLS])
def test_client_matches_the_servers_document(document, call):
    assert check_call(document, *call) == []


@pytest.mark.parametrize("call", WEBHOOK_CALLS, ids=[f"{c[0]} {c[1]}" for c in WEBHOOK_CALLS])
def test_webhook_calls_match_the_servers_document(document, call):
    if "/v1/webhooks" not in document["paths"]:
        pytest.skip("this service does not serve /v1/webhooks yet")
    assert check_call(document, *call) == []


def test_the_check_catches_a_breaking_change(document):
    """The checker itself: a renamed field, a new required field, a grown enumeration and a
    dropped query parameter each fail."""
    import copy

    doc = copy.deepcopy(document)
    schemas = doc["components"]["schemas"]
    schemas["ReferralPublic"]["properties"]["state"] = schemas["ReferralPublic"]["properties"].pop("status")
    schemas["ReferralPublic"]["required"] = [*schemas["ReferralPublic"]["required"], "state"]
    problems = check_call(doc, "get", "/v1/referrals/{id}", [], None, m.Referral)
    assert any("status: the client's field is not in" in p for p in problems)
    assert any("state: the server requires it" in p for p in problems)

    schemas["Urgency"]["enum"].append("critical")
    assert any("urgency" in p for p in check_call(doc, "get", "/v1/referrals", [], None, m.ReferralSummary))
    schemas["ConsentOut"]["properties"]["given"] = {"type": "string"}
    assert any("consent.given" in p for p in check_call(doc, "get", "/v1/referrals", [], None, m.ReferralSummary))
    schemas["TransitionIn"]["properties"]["action"] = {"type": "integer"}
    assert check_call(doc, "post", "/v1/referrals/{id}/transitions", [], m.TransitionIn, None)
    doc["paths"]["/v1/notices"]["get"]["parameters"] = [
        p for p in doc["paths"]["/v1/notices"]["get"]["parameters"] if p["name"] != "acknowledged"]
    assert check_call(doc, "get", "/v1/notices", ["acknowledged"], None, None)


def test_every_partner_operation_has_its_client_call(document):
    """A route added under /v1 without its call (and its row above) fails here. The officers'
    routes are the agencies' administration of the people who sign in to the console, not a
    partner system's call."""
    covered = {(method, path) for method, path, *_ in CALLS + WEBHOOK_CALLS}
    served = {(method, path) for path, ops in document["paths"].items() if path.startswith("/v1/")
              and "/officers" not in path for method in ops}
    assert sorted(served - covered) == []


def test_the_check_catches_a_drift_of_the_newer_resources(document):
    """A field the server starts to require in a departure record (one item of the batch), a
    border post added, a place's name retyped in a nested object of the public warnings, and a
    modus the server no longer takes each fail."""
    import copy

    doc = copy.deepcopy(document)
    schemas = doc["components"]["schemas"]
    record = schemas["DepartureBatchIn"]["properties"]["records"]["items"]
    record["properties"]["destination_port"] = {"type": "string"}
    record["required"] = [*record["required"], "destination_port"]
    assert any("destination_port: the server requires it" in p
               for p in check_call(doc, "post", "/v1/register/departures/batch", [], m.DepartureRecord, None))

    schemas["EntryPoint"]["enum"].append("pelabuhan_dwikora")
    assert any("entry_point" in p for p in check_call(doc, "get", "/v1/manifests/persons", [], None, m.ManifestPerson))
    schemas["Place"]["properties"]["name"] = {"type": "integer"}
    assert any("region.name" in p for p in check_call(doc, "get", "/v1/public/warnings", [], None, m.PublicWarning))
    schemas["RecruitmentModus"]["enum"].remove("marriage_offer")
    assert any("modus" in p for p in check_call(doc, "post", "/v1/alerts/reports", [], m.RecruitmentReportCreate,
                                                None))
    doc["paths"]["/v1/register/persons"]["get"]["parameters"] = [
        p for p in doc["paths"]["/v1/register/persons"]["get"]["parameters"] if p["name"] != "repeat_return"]
    assert check_call(doc, "get", "/v1/register/persons", ["repeat_return"], None, None)
