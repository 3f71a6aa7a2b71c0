"""``/oauth/token``, ``/oauth/revoke``, ``/.well-known/jwks.json`` and
``/.well-known/oauth-authorization-server`` (RFC 8414).

Errors here follow RFC 6749 §5.2 (``{"error", "error_description"}``), as OAuth clients expect,
not problem+json.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.core.scopes import Scope
from api.http.openapi import OAUTH_ERRORS
from api.http.session import ServicesDep, SessionDep
from api.oauth import service
from api.oauth.schemas import REVOKE_FORM, TOKEN_FORM, AuthorizationServerMetadata, Revoked, TokenReply
from api.oauth.service import OAuthError

router = APIRouter(tags=["oauth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_reply(err: OAuthError) -> JSONResponse:
    """An RFC 6749 §5.2 error reply (the application's handler for :class:`OAuthError`)."""
    headers = dict(_NO_STORE)
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="sinergi"' if err.basic else 'Bearer realm="sinergi"'
    return JSONResponse({"error": err.error, "error_description": err.description}, err.status, headers)


async def _form(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "Send the parameters as application/x-www-form-urlencoded")
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _client_credentials(request: Request, form: dict[str, Any]) -> tuple[str | None, str | None, bool]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        if "client_id" in form or "client_secret" in form:
            # RFC 6749 §2.3: a client must not use more than one authentication method in a
            # request; which of two differing identities to believe is not ours to guess.
            raise OAuthError("invalid_request", "Authenticate with one method: HTTP Basic or client_id and "
                             "client_secret in the body, not both")
        try:
            raw = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "Malformed Basic credentials", 401) from None
        cid, sep, secret = raw.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "Malformed Basic credentials", 401)
        return unquote_plus(cid), unquote_plus(secret), True
    return form.get("client_id"), form.get("client_secret"), False


def _form_body(schema: dict[str, Any], example: dict[str, str]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": schema, "example": example}}}, **OAUTH_ERRORS}


@router.post("/oauth/token", name="token.issue", response_model=TokenReply,
             responses={400: {"description": "RFC 6749 §5.2: `invalid_request`, `unsupported_grant_type`, "
                              "`invalid_scope`"},
                        401: {"description": "RFC 6749 §5.2: `invalid_client` (`WWW-Authenticate: Basic`)"}},
             openapi_extra=_form_body(TOKEN_FORM, {"grant_type": "client_credentials",
                                                   "scope": "returnees:read returnees:write"}))
async def token(request: Request, session: SessionDep, svc: ServicesDep) -> JSONResponse:
    """OAuth2 client credentials grant (``client_secret_basic`` or ``client_secret_post``)."""
    basic = request.headers.get("authorization", "").lower().startswith("basic ")
    try:
        form = await _form(request)
        client_id, secret, basic = _client_credentials(request, form)
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant != "client_credentials":
            raise OAuthError("unsupported_grant_type", "Only client_credentials is supported")
        client, agency = await service.authenticate_client(session, client_id, secret)
        body = await service.issue_token(session, svc.keys, svc.settings, client, agency, form.get("scope"))
    except OAuthError as err:
        # Raised, not returned: the request's unit rolls back and the refusal is recorded as
        # every failed request is (api.http.session), so a flood of wrong secrets is summarised
        # per source and minute instead of taking the chain head once per attempt.
        err.basic = basic
        raise
    return JSONResponse(body, headers=_NO_STORE)


@router.post("/oauth/revoke", name="token.revoke", response_model=Revoked,
             responses={400: {"description": "RFC 6749 §5.2: `invalid_request`"},
                        401: {"description": "RFC 6749 §5.2: `invalid_client`"}},
             openapi_extra=_form_body(REVOKE_FORM, {"token": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIuLi4ifQ.c2ln"}))
async def revoke(request: Request, session: SessionDep, svc: ServicesDep) -> JSONResponse:
    """RFC 7009 token revocation: the token stops working at once."""
    basic = request.headers.get("authorization", "").lower().startswith("basic ")
    try:
        form = await _form(request)
        client_id, secret, basic = _client_credentials(request, form)
        client, _agency = await service.authenticate_client(session, client_id, secret, "token.revoke")
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        await service.revoke_token(session, svc.keys, svc.settings, client, token)
    except OAuthError as err:
        # Raised, not returned: the request's unit rolls back and the refusal is recorded as
        # every failed request is (api.http.session), so a flood of wrong secrets is summarised
        # per source and minute instead of taking the chain head once per attempt.
        err.basic = basic
        raise
    return JSONResponse({}, headers=_NO_STORE)


@router.get("/.well-known/jwks.json", name="jwks")
async def jwks(svc: ServicesDep) -> JSONResponse:
    """The public keys that verify access tokens (current and recently retired)."""
    return JSONResponse(await svc.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})


@router.get("/.well-known/oauth-authorization-server", name="oauth.metadata",
            response_model=AuthorizationServerMetadata)
async def metadata(svc: ServicesDep) -> JSONResponse:
    """RFC 8414 authorization server metadata: the token endpoint, how clients authenticate to
    it, the grant and the scopes, so standard OAuth clients configure themselves. The issuer is
    the ``iss`` of the access tokens."""
    issuer = svc.settings.issuer
    base = issuer.rstrip("/")
    methods = ["client_secret_basic", "client_secret_post"]
    body = AuthorizationServerMetadata(
        issuer=issuer,
        token_endpoint=f"{base}/oauth/token",
        jwks_uri=f"{base}/.well-known/jwks.json",
        revocation_endpoint=f"{base}/oauth/revoke",
        grant_types_supported=["client_credentials"],
        token_endpoint_auth_methods_supported=methods,
        revocation_endpoint_auth_methods_supported=methods,
        scopes_supported=list(Scope),
        service_documentation=f"{base}/docs",
    )
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "public, max-age=300"})
