"""Dependencies: the request's transaction and the caller.

``SessionDep`` is the one transaction of a request. It commits when the route returns, after
writing the events and audit entries the request recorded (same transaction, chain heads last
so their row locks are held as briefly as possible). When the route fails it rolls everything
back and records only the failure, in a transaction of its own. Routes and services never
commit.

Per-scope callers (Polar's habit) make a route's signature say who may call it::

    async def get(caller: auth.ReturneesRead, session: SessionDep, id: UUID): ...
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlows as OAuthFlowsModel
from fastapi.security import OAuth2
from sqlmodel.ext.asyncio.session import AsyncSession

from api.audit import service as audit
from api.context import Caller, RequestContext
from api.db import Database
from api.errors import Forbidden, Unauthorized
from api.events import outbox
from api.scopes import SCOPES
from api.security import tokens
from api.security.keys import KeyStore
from api.settings import Settings
from models import Agency, AgencyKind, ApiClient, RevokedToken

log = logging.getLogger("sinergi.deps")


@dataclass
class Services:
    settings: Settings
    db: Database
    keys: KeyStore


def services(request: Request) -> Services:
    return request.app.state.services


def request_context(request: Request) -> RequestContext:
    ctx = getattr(request.state, "ctx", None)
    if ctx is None:
        route = request.scope.get("route")
        ctx = RequestContext(
            request_id=getattr(request.state, "request_id", None),
            ip=request.client.host if request.client else None,
            route=getattr(route, "name", None),
            path_params=dict(request.path_params),
        )
        request.state.ctx = ctx
    return ctx


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    svc = services(request)
    ctx = request_context(request)
    async with svc.db.sessionmaker() as session:
        session.info["ctx"] = ctx
        try:
            yield session
        except BaseException as exc:
            await session.rollback()
            await _record_failure(svc, ctx, exc)
            raise
        try:
            if ctx.caller is not None and not ctx.audit:
                audit.record(session, ctx.route or "request")
            await commit(session, ctx)
        except BaseException as exc:
            await session.rollback()
            await _record_failure(svc, ctx, exc)
            raise


async def commit(session: AsyncSession, ctx: RequestContext) -> None:
    """Write the unit's events and audit entries, then commit. The chain heads are advanced
    last (events, then audit: always in that order, so two units never deadlock); what needs
    no head (the audit subjects) is written before either is locked."""
    await session.flush()
    staged = await audit.stage(session, ctx, ctx.audit)  # audit subjects: no lock needed
    await outbox.flush(session, ctx)
    await audit.append_staged(session, staged)
    ctx.audit.clear()
    await session.commit()


@asynccontextmanager
async def operator_unit(db: Database, actor: str = "cli") -> AsyncIterator[AsyncSession]:
    """A unit of work outside HTTP (the command line, the demo loader), audited as ``actor``."""
    ctx = RequestContext(request_id=None, claimed_client_id=actor, route="cli")
    async with db.sessionmaker() as session:
        session.info["ctx"] = ctx
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await commit(session, ctx)


async def _record_failure(svc: Services, ctx: RequestContext, exc: BaseException) -> None:
    try:
        await audit.record_failure(svc.db, ctx, exc)
    except Exception:  # the database itself may be what failed; the log still has it
        log.exception("could not record a failed request in the audit chain",
                      extra={"request_id": ctx.request_id})


# scope="function": the transaction ends (commit or rollback) before the response is sent, so
# a caller never sees a success that was not committed.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
ServicesDep = Annotated[Services, Depends(services)]


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
        claims = tokens.verify(token, key, issuer=svc.settings.issuer, audience=svc.settings.audience)
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
    flows=OAuthFlowsModel(clientCredentials={"tokenUrl": "/oauth/token", "scopes": SCOPES}),
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
        return caller

    return dependency
