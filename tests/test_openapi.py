"""The OpenAPI document tells the truth (api/http/openapi.py), and its pages work offline.

* Every error status an operation can return is declared, as an RFC 9457 problem (422 with
  ``errors[{field, message}]``), and FastAPI's own validation error shape is gone. That every
  status the suite ever receives is declared, in the media type declared, is checked on every
  reply of every test (tests/reply_shapes.py); :func:`test_an_undeclared_status_fails_the_test`
  shows that check at work.
* ``Idempotency-Key`` and ``If-Match`` are header parameters (If-Match required), the reply
  headers are declared, the token endpoint has its form and replies, closed sets are
  enumerations, and every operation has a whole request example the server itself accepts.
* ``/.well-known/oauth-authorization-server`` (RFC 8414) configures a standard OAuth client.
* ``/docs`` and ``/redoc`` render every operation in a headless Chromium that cannot reach
  anything but the server (no CDN), shown by a screenshot.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.responses import Response

from api.app import create_app
from api.core.settings import Settings
from models import AgencyKind
from tests.reply_shapes import CheckReplies, ReplyMismatch

PROBLEM = "application/problem+json"
OAUTH = {("POST", "/oauth/token"), ("POST", "/oauth/revoke")}


@pytest.fixture(scope="module")
def doc_app() -> FastAPI:  # the document needs no database
    return create_app(Settings(mode="development"), configure_logging=False)


@pytest.fixture(scope="module")
def doc(doc_app: FastAPI) -> dict[str, Any]:
    return doc_app.openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in doc["paths"].items() for m, op in item.items()
            if m in ("get", "post", "put", "patch", "delete")]


def test_every_error_is_a_declared_problem(doc):
    assert "HTTPValidationError" not in json.dumps(doc)
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance"} <= problem["properties"].keys()
    errors = doc["components"]["schemas"]["ValidationProblem"]["properties"]["errors"]
    item = doc["components"]["schemas"][errors["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(item["required"]) == {"field", "message"}
    for method, path, op in operations(doc):
        replies = op["responses"]
        for code, reply in replies.items():
            if int(code) < 400:
                continue
            content = reply["content"]
            if (method, path) in OAUTH and code in ("400", "401"):
                assert content["application/json"]["schema"]["$ref"].endswith("/OAuthError"), (path, code)
                continue
            if (method, path) == ("GET", "/readyz") and code == "503":
                continue  # the readiness probe's own reply
            schema = content[PROBLEM]["schema"]["$ref"]
            assert schema.endswith("/ValidationProblem" if code == "422" else "/Problem"), (method, path, code)
        assert {"429", "503"} <= replies.keys(), (method, path)


def test_the_statuses_follow_from_the_operation(doc):
    for method, path, op in operations(doc):
        codes = {int(c) for c in op["responses"]}
        params = {(p["in"], p["name"]) for p in op.get("parameters", [])}
        if op.get("security"):
            assert {401, 403} <= codes, (method, path)
        if any(where == "path" for where, _ in params):
            assert 404 in codes, (method, path)
        if "requestBody" in op and (method, path) not in OAUTH:
            assert {400, 413, 415, 422} <= codes, (method, path)
        if ("header", "If-Match") in params:
            assert {412, 428} <= codes, (method, path)
        if ("header", "Idempotency-Key") in params:
            assert {409, 422} <= codes, (method, path)


def test_headers_are_declared(doc):
    ops = {(m, p): op for m, p, op in operations(doc)}
    for key in [("POST", "/v1/returnees/batch"), ("POST", "/v1/notices"), ("POST", "/v1/referrals"),
                ("POST", "/v1/notices/{id}/follow-ups")]:
        param = {p["name"]: p for p in ops[key]["parameters"]}["Idempotency-Key"]
        assert param["in"] == "header" and not param.get("required"), key
        ok = next(r for c, r in ops[key]["responses"].items() if c.startswith("2"))
        assert "Idempotent-Replayed" in ok["headers"], key
    for key in [("POST", "/v1/notices/{id}/acknowledge"), ("POST", "/v1/referrals/{id}/transitions")]:
        param = {p["name"]: p for p in ops[key]["parameters"]}["If-Match"]
        assert param["in"] == "header" and param["required"] is True, key
    for key in [("GET", "/v1/returnees/{id}"), ("GET", "/v1/notices/{id}"), ("GET", "/v1/referrals/{id}"),
                ("POST", "/v1/referrals/{id}/transitions"), ("POST", "/v1/referrals")]:
        ok = next(r for c, r in ops[key]["responses"].items() if c.startswith("2"))
        assert "ETag" in ok["headers"], key
    for _, _, op in operations(doc):
        for code, reply in op["responses"].items():
            assert "X-Request-ID" in reply["headers"]
            if code in ("429", "503"):
                assert "Retry-After" in reply["headers"]


def test_every_idempotent_route_declares_its_key(doc_app, doc):
    """A route that takes an ``Idempotency-Key`` (it calls ``idempotency.begin``) declares the
    header (``dependencies=[idempotency.KEY]``), so partners and the client see it; a new route
    that forgets it fails here."""
    missing = []
    for rc in iter_route_contexts(doc_app.routes):
        route = rc.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if "idempotency.begin(" not in inspect.getsource(route.endpoint):
            continue
        for method in rc.methods or ():
            op = doc["paths"][rc.path_format][method.lower()]
            if not any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in op.get("parameters", [])):
                missing.append(f"{method} {rc.path_format}")
    assert not missing, missing


def test_the_token_endpoint_is_described(doc):
    op = doc["paths"]["/oauth/token"]["post"]
    form = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == ["client_credentials"]
    assert {"scope", "client_id", "client_secret"} <= form["properties"].keys()
    reply = doc["components"]["schemas"][op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                                         .rsplit("/", 1)[1]]
    assert {"access_token", "token_type", "expires_in", "scope"} <= set(reply["required"])


def _enum_of(schema: dict[str, Any], doc: dict[str, Any]) -> list[str] | None:
    for branch in schema.get("anyOf", [schema]):
        if "$ref" in branch:
            branch = doc["components"]["schemas"][branch["$ref"].rsplit("/", 1)[1]]
        if branch.get("type") == "array":
            branch = branch["items"]
        if "enum" in branch:
            return list(branch["enum"])
    return None


def test_closed_sets_are_enumerations(doc):
    def param(path: str, name: str) -> list[str] | None:
        p = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}[name]
        return _enum_of(p["schema"], doc)

    assert param("/v1/stats/returnees", "group_by") == ["district", "month", "sex", "age_group",
                                                         "returned_from_country", "return_type", "trafficking_status"]
    assert param("/v1/stats/referrals", "group_by") == ["status", "to_agency", "reason", "month", "urgency",
                                                         "district"]
    assert "61.10" in param("/v1/stats/referrals", "district")
    assert "in-progress" in param("/v1/referrals", "status")
    assert "61.07" in param("/v1/notices", "district")
    assert "61.07.07" in param("/v1/returnees", "district")
    for path, name in [("/v1/returnees", "sort"), ("/v1/referrals", "role"), ("/v1/referrals", "urgency"),
                       ("/v1/stats/returnees", "return_type"), ("/v1/referrals", "reason")]:
        assert param(path, name), (path, name)
    action = doc["components"]["schemas"]["TransitionIn"]["properties"]["action"]
    assert "cancel" in _enum_of(action, doc)


def test_alternative_scopes_are_alternatives(doc):
    assert doc["paths"]["/v1/referrals/{id}/transitions"]["post"]["security"] == [
        {"client_credentials": ["referrals:respond"]}, {"client_credentials": ["referrals:write"]}]
    for _, _, op in operations(doc):
        for requirement in op.get("security", []):  # no scope: any valid token (the region reference)
            assert all(len(scopes) <= 1 for scopes in requirement.values()), op["security"]


def test_every_operation_has_a_whole_request_example_the_server_accepts(doc_app, doc):
    """Every parameter and every body has an example, and the route's own validators accept
    it (the same validation a request goes through)."""
    routes = {(m, rc.path_format): rc.original_route for rc in iter_route_contexts(doc_app.routes)
              if isinstance(rc.original_route, APIRoute) for m in rc.methods or ()}
    for method, path, op in operations(doc):
        for p in op.get("parameters", []):
            assert "example" in p, (method, path, p["name"])
        body = op.get("requestBody")
        if body is not None:
            media = next(iter(body["content"].values()))
            assert "example" in media, (method, path)
        route = routes[(method, path)]
        for field in route.dependant.query_params + route.dependant.path_params:
            example = {p["name"]: p["example"] for p in op["parameters"]}[field.alias]
            _, errors = field.validate(example, {}, loc=("query", field.alias))
            assert not errors, (method, path, field.alias, example, errors)
        if route.body_field is not None:
            example = next(iter(op["requestBody"]["content"].values()))["example"]
            _, errors = route.body_field.validate(example, {}, loc=("body",))
            assert not errors, (method, path, errors)


async def test_a_reply_that_does_not_match_its_declared_model_fails_the_test():
    """The shape check: a route that builds its own JSON (as the batch push does) replying
    something its ``response_model`` does not allow is caught, whatever test received it; a
    matching reply passes and is counted."""
    from pydantic import BaseModel

    class Out(BaseModel):
        id: str
        count: int

    app = FastAPI()

    @app.get("/built", response_model=Out)
    async def built(good: bool = False) -> Response:
        body = b'{"id": "a", "count": 1}' if good else b'{"id": "a", "count": "many"}'
        return Response(body, media_type="application/json")

    checked = CheckReplies(app)
    transport = httpx.ASGITransport(app=checked, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/built", params={"good": "true"})).status_code == 200
        assert checked.checked == 1
        with pytest.raises(ReplyMismatch, match="does not match"):
            await http.get("/built")
    assert checked.mismatches and "count" in checked.mismatches[0]


async def test_an_undeclared_status_fails_the_test():
    """The drift check: a documented operation replying a status its document does not declare."""
    app = FastAPI()

    @app.get("/teapot", responses={200: {"description": "ok"}})
    async def teapot() -> Response:
        return Response(status_code=418)

    checked = CheckReplies(app)
    transport = httpx.ASGITransport(app=checked, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        with pytest.raises(ReplyMismatch, match="418, which the OpenAPI document does not declare"):
            await http.get("/teapot")
    assert checked.mismatches


# --- RFC 8414 ----------------------------------------------------------------------------------


async def test_a_standard_oauth_client_discovers_the_token_endpoint(app, client, make_party):
    """authlib reads and validates the metadata, then gets a token from the endpoint it names,
    with either client authentication method it lists, and the token works."""
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

    party = await make_party("BP3MI-KALBAR", "61", ["returnees:read"], kind=AgencyKind.migrant_protection)
    r = await client.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    meta = AuthorizationServerMetadata(r.json())
    for name in dir(meta):
        # RFC 8414 validation as authlib does it, but for response_types_supported: that is about
        # the authorization endpoint, which a client-credentials-only server does not have
        if name.startswith("validate_") and name != "validate_response_types_supported":
            getattr(meta, name)()
    settings = app.state.services.settings
    assert meta["issuer"] == settings.issuer
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert "returnees:read" in meta["scopes_supported"]
    for method in meta["token_endpoint_auth_methods_supported"]:
        async with AsyncOAuth2Client(party.client_id, party.client_secret, token_endpoint_auth_method=method,
                                     scope="returnees:read",
                                     transport=httpx.ASGITransport(app=CheckReplies(app))) as oauth:
            token = await oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
            assert token["token_type"] == "Bearer" and token["scope"] == "returnees:read", method
            listed = await oauth.get(meta["issuer"] + "/v1/returnees")
            assert listed.status_code == 200, listed.text


# --- the pages, offline --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def served(backend, database_url):
    if backend.name != "sqlite":
        pytest.skip("the pages do not depend on the database: rendered once, on SQLite")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("the docs test needs chromium and chromedriver (.ci/run installs them)")
    from tests.e2e.test_two_processes import server

    with server(database_url) as url:
        yield url


def _browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1800", f"--user-data-dir={tmp_path / 'profile'}",
                # nothing but the server can be reached: every other name fails to resolve
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--no-proxy-server", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-default-apps"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download a driver
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def _requested(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


PAGES = [
    # page, a script counting the operations it rendered
    ("/docs", "return document.querySelectorAll('.opblock').length"),
    ("/redoc", "return document.querySelectorAll('[data-section-id*=\"operation/\"]').length"),
]


@pytest.mark.parametrize(("page", "count_js"), PAGES, ids=["swagger-ui", "redoc"])
def test_the_docs_render_every_operation_without_internet(served, tmp_path, page, count_js):
    from selenium.webdriver.support.ui import WebDriverWait

    expected = len([1 for _, _, _ in operations(httpx.get(served + "/openapi.json").json())])
    driver = _browser(tmp_path)
    try:
        driver.get(served + page)
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(count_js) >= expected)
        shot = tmp_path / f"{page.strip('/')}.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000  # a page with content, not a blank one
        text = driver.execute_script("return document.body.innerText")
        assert "/v1/returnees/batch" in text or "Returnee.Batch" in text or "returnee" in text.lower()
        requested = _requested(driver)
    finally:
        driver.quit()
    assert requested, "the browser log shows no request"
    # chrome:// pages are the browser's own (its new-tab page), not the network
    foreign = [u for u in requested if u.startswith(("http:", "https:", "ws:", "wss:")) and not u.startswith(served)]
    assert not foreign, f"{page} requested outside the server: {foreign}"
    assert any(u.endswith(".js") for u in requested)


def test_the_assets_are_the_packaged_ones(tmp_path):
    from api.http.docs import asset_dir

    names = {p.name for p in asset_dir().iterdir()}
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"} <= names
