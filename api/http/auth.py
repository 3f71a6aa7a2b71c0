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
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock, tokens
from api.core.context import Caller
from api.core.errors import Forbidden, Unauthorized
from api.core.scopes import SCOPES as SCOPE_DESCRIPTIONS
from api.http import inputs
from api.http.session import SessionDep, request_context, services
from models import Agency, AgencyKind, ApiClient, RevokedToken

__all__ = ["Caller", "authenticate", "require_scope"]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def authenticate(request: Request, session: AsyncSession) -> Caller:
    """Verify the bearer token and load the caller; 401 for anything short of a live token."""
    svc = services(request)
    ctx = request_context(request)
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("A bearer token is required")
    try:
        kid = tokens.peek_kid(token)
        key = await svc.keys.verifier(kid)
        if key is None:
            raise tokens.InvalidToken("The token was signed by a key this service does not know")
        claims = tokens.verify(token, key, issuer=svc.settings.issuer, audience=svc.settings.audience,
                               now=clock.now(), max_lifetime=svc.settings.access_token_ttl)
    except tokens.InvalidToken as exc:
        raise Unauthorized(str(exc)) from None
    ctx.claimed_client_id = claims.client_id
    revoked = sa.select(RevokedToken.jti).where(RevokedToken.jti == claims.jti).exists()
    row = (
        await session.execute(
            sa.select(ApiClient.disabled_at, Agency.code, Agency.kind, Agency.jurisdiction, revoked)
            .join(Agency, Agency.code == ApiClient.agency_code)
            .where(ApiClient.client_id == claims.client_id)
        )
    ).first()
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


# Documents the token flow in the OpenAPI document (the "Authorize" button of /docs, and the
# scopes each operation needs). It only reads the header; :func:`authenticate` does the checking.
oauth2_scheme = OAuth2(
    flows=OAuthFlowsModel(clientCredentials={"tokenUrl": "/oauth/token", "scopes": SCOPE_DESCRIPTIONS}),
    scheme_name="client_credentials",
    auto_error=False,
)


def require_scope(*scopes: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency yielding the caller, who must hold one of ``scopes`` (else 403); with more
    than one, the route decides what each allows."""

    async def dependency(
        request: Request,
        session: SessionDep,
        _header: str | None = Security(oauth2_scheme, scopes=list(scopes)),  # a default: the scopes are local
    ) -> Caller:
        caller = await authenticate(request, session)
        held = [s for s in scopes if caller.has(s)]
        if not held:
            raise Forbidden(" ".join(scopes))
        request_context(request).scope_used = " ".join(held)
        await inputs.screen(request)  # after authentication: the failure entry names the caller
        return caller

    return dependency


SCOPES = tuple(SCOPE_DESCRIPTIONS)

Admin = Annotated[Caller, Depends(require_scope("admin"))]
AuditRead = Annotated[Caller, Depends(require_scope("audit:read"))]
ReturneesWrite = Annotated[Caller, Depends(require_scope("returnees:write"))]
ReturneesRead = Annotated[Caller, Depends(require_scope("returnees:read"))]
NoticesWrite = Annotated[Caller, Depends(require_scope("notices:write"))]
NoticesRead = Annotated[Caller, Depends(require_scope("notices:read"))]
NoticesAck = Annotated[Caller, Depends(require_scope("notices:ack"))]
ReferralsWrite = Annotated[Caller, Depends(require_scope("referrals:write"))]
ReferralsRead = Annotated[Caller, Depends(require_scope("referrals:read"))]
ReferralsAct = Annotated[Caller, Depends(require_scope("referrals:respond", "referrals:write"))]
StatsRead = Annotated[Caller, Depends(require_scope("stats:read"))]
EventsRead = Annotated[Caller, Depends(require_scope("events:read"))]
WebhooksManage = Annotated[Caller, Depends(require_scope("webhooks:manage"))]
