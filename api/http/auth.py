"""Authentication and per-scope callers.

:func:`authenticate` verifies the bearer token (only through :mod:`api.core.tokens`) and loads
the caller; :func:`require_scope` makes a dependency of it. The aliases below (Polar's habit)
make a route's signature say who may call it::

    async def get(caller: auth.ReturneesRead, session: SessionDep, id: UUID): ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlows as OAuthFlowsModel
from fastapi.security import OAuth2
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock, db, tokens
from api.core.context import Caller
from api.core.errors import Forbidden, Unauthorized
from api.core.scopes import DESCRIPTIONS, Scope
from api.http import inputs
from api.http.ratelimit import TooManyRequests, counter_key
from api.http.session import Services, SessionDep, request_context, services
from models import Agency, AgencyKind, ApiClient, RevokedToken

__all__ = ["Caller", "authenticate", "require_scope"]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def authenticate(request: Request, session: AsyncSession) -> Caller:
    """Verify the bearer token and load the caller; 401 for anything short of a live token.

    Rate limits (:mod:`api.http.ratelimit`) are counted here, after the signature check and
    before the client lookup, so the request's session holds no connection yet: a refused
    attempt counts against its source (and past ``rate_source`` is a 429), a verified token
    against its client (past ``rate_client``, a 429)."""
    svc = services(request)
    ctx = request_context(request)
    try:
        claims = await _verified_claims(request, svc, session)
    except Unauthorized:
        await _count(svc, session, counter_key("source", ctx.ip), svc.settings.rate_source,
                     "failed authentication attempts from this address")
        raise
    ctx.claimed_client_id = claims.client_id
    await _count(svc, session, counter_key("client", claims.client_id), svc.settings.rate_client,
                 "requests from this client")
    found = await db.rows(session, _CALLER, client_id=claims.client_id, jti=claims.jti)
    row = found[0] if found else None
    if row is None or row[0] is not None:
        raise Unauthorized("The client is unknown or disabled")
    if row[4]:
        raise Unauthorized("The token has been revoked")
    caller = Caller(
        client_id=claims.client_id,
        agency=row[1],
        agency_kind=AgencyKind(row[2]),
        jurisdiction=row[3],
        scopes=claims.scopes,
        token_id=claims.jti,
    )
    ctx.caller = caller
    return caller


# The token's client, its agency, and whether the token was revoked: built once (a statement
# built for each request costs more than SQLAlchemy's cached compilation of it).
_CALLER = (
    sa.select(col(ApiClient.disabled_at), col(Agency.code), col(Agency.kind), col(Agency.jurisdiction),
              sa.select(col(RevokedToken.jti)).where(col(RevokedToken.jti) == sa.bindparam("jti")).exists())
    .join(Agency, col(Agency.code) == col(ApiClient.agency_code))
    .where(col(ApiClient.client_id) == sa.bindparam("client_id"))
)


async def _verified_claims(request: Request, svc: Services, session: AsyncSession) -> tokens.TokenClaims:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("A bearer token is required")
    try:
        kid = tokens.peek_kid(token)
        key = await svc.keys.verifier(kid, session)  # an unknown kid is looked up on the session
        if key is None:
            raise tokens.InvalidToken("The token was signed by a key this service does not know")
        return tokens.verify(token, key, issuer=svc.settings.issuer, audience=svc.settings.audience,
                             now=clock.now(), max_lifetime=svc.settings.access_token_ttl)
    except tokens.InvalidToken as exc:
        raise Unauthorized(str(exc)) from None


async def _count(svc: Services, session: AsyncSession, key: str, limit: int, what: str) -> None:
    if svc.limiter is None:
        return
    verdict = await svc.limiter.hit(key, limit, session)
    if not verdict.allowed:
        raise TooManyRequests(verdict.retry_after, what)


# Documents the token flow in the OpenAPI document (the "Authorize" button of /docs, and the
# scopes each operation needs). It only reads the header; :func:`authenticate` does the checking.
oauth2_scheme = OAuth2(
    flows=OAuthFlowsModel(clientCredentials={"tokenUrl": "/oauth/token", "scopes": {str(s): d for s, d in DESCRIPTIONS.items()}}),
    scheme_name="client_credentials",
    auto_error=False,
)


def require_scope(*scopes: Scope) -> Callable[..., Awaitable[Caller]]:
    """A dependency yielding the caller, who must hold one of ``scopes`` (else 403); with more
    than one, the route decides what each allows."""

    async def dependency(
        request: Request,
        session: SessionDep,
        _header: str | None = Security(oauth2_scheme, scopes=[str(s) for s in scopes]),  # a default: the scopes are local
    ) -> Caller:
        caller = await authenticate(request, session)
        held = [s for s in scopes if caller.has(s)]
        if not held:
            raise Forbidden(" ".join(scopes))
        request_context(request).scope_used = " ".join(held)
        await inputs.screen(request)  # after authentication: the failure entry names the caller
        return caller

    return dependency


def require_token() -> Callable[..., Awaitable[Caller]]:
    """A dependency yielding the caller of any valid token, whatever its scopes (reference
    data every partner needs, such as the region codes)."""

    async def dependency(
        request: Request,
        session: SessionDep,
        _header: str | None = Security(oauth2_scheme),
    ) -> Caller:
        caller = await authenticate(request, session)
        await inputs.screen(request)
        return caller

    return dependency


AnyToken = Annotated[Caller, Depends(require_token())]
Admin = Annotated[Caller, Depends(require_scope(Scope.admin))]
AuditRead = Annotated[Caller, Depends(require_scope(Scope.audit_read))]
ReturneesWrite = Annotated[Caller, Depends(require_scope(Scope.returnees_write))]
ReturneesRead = Annotated[Caller, Depends(require_scope(Scope.returnees_read))]
NoticesWrite = Annotated[Caller, Depends(require_scope(Scope.notices_write))]
NoticesRead = Annotated[Caller, Depends(require_scope(Scope.notices_read))]
NoticesAck = Annotated[Caller, Depends(require_scope(Scope.notices_ack))]
ReferralsWrite = Annotated[Caller, Depends(require_scope(Scope.referrals_write))]
ReferralsRead = Annotated[Caller, Depends(require_scope(Scope.referrals_read))]
ReferralsAct = Annotated[Caller, Depends(require_scope(Scope.referrals_respond, Scope.referrals_write))]
StatsRead = Annotated[Caller, Depends(require_scope(Scope.stats_read))]
RegisterWrite = Annotated[Caller, Depends(require_scope(Scope.register_write))]
RegisterRead = Annotated[Caller, Depends(require_scope(Scope.register_read))]
RegisterCounts = Annotated[Caller, Depends(require_scope(Scope.register_read, Scope.stats_read))]
AlertsWrite = Annotated[Caller, Depends(require_scope(Scope.alerts_write))]
AlertsRead = Annotated[Caller, Depends(require_scope(Scope.alerts_read))]
EventsRead = Annotated[Caller, Depends(require_scope(Scope.events_read))]
OfficersManage = Annotated[Caller, Depends(require_scope(Scope.officers_manage, Scope.admin))]
WebhooksManage = Annotated[Caller, Depends(require_scope(Scope.webhooks_manage))]
ManifestsWrite = Annotated[Caller, Depends(require_scope(Scope.manifests_write))]
ManifestsRead = Annotated[Caller, Depends(require_scope(Scope.manifests_read))]
ManifestsLocate = Annotated[Caller, Depends(require_scope(Scope.manifests_locate))]
