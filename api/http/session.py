"""The request's unit of work, as a FastAPI dependency.

``SessionDep`` is the one transaction of a request: a :class:`api.core.unit.Unit`. It commits
when the route returns, after writing the events and audit entries the request recorded (same
transaction, chain heads last so their row locks are held as briefly as possible). When the
route fails it rolls everything back and records only the failure, in a transaction of its
own, with the status the caller is answered (a database error is turned here into the 503
problem it is answered with). Routes and services never commit.

When the COMMIT's answer is lost (:class:`api.core.errors.OutcomeUnknown`, see
:mod:`api.core.unit`) no failure is recorded: if the transaction committed, the request's own
entries are in the chain; if it did not, nothing of it is. The log says which request it was.

After a successful unit, audit entries that waited in the spool for the database to come back
(:func:`api.core.audit.drain_spool`) are written, in the background.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, text
from api.core.context import RequestContext
from api.core.db import Database
from api.core.errors import OutcomeUnknown
from api.core.keys import KeyStore
from api.core.settings import Settings
from api.core.unit import Unit
from api.http import inputs
from api.http.denials import DenialLedger, aggregated
from api.http.problems import database_problem
from api.http.ratelimit import Limiter

log = logging.getLogger("sinergi.session")


@dataclass
class Services:
    settings: Settings
    db: Database
    keys: KeyStore
    limiter: Limiter | None = None  # api.http.ratelimit; None: no limits
    denials: DenialLedger | None = None  # None: every denial is its own audit entry


def services(request: Request) -> Services:
    return request.app.state.services


# The person behind a partner's machine call, as the partner names it (X-Road's X-Road-UserId).
USER_HEADER = "Sinergi-User-Id"


def claimed_user(value: str | None) -> str | None:
    """The header's value as the audit entry keeps it (``on_behalf_of``): bounded, never trusted."""
    if value is None or not value.strip():
        return None
    return text.bounded(value.strip(), text.MAX_ID)


def request_context(request: Request) -> RequestContext:
    ctx = getattr(request.state, "ctx", None)
    if ctx is None:
        route = request.scope.get("route")
        state = request.scope.get("state", {})
        ctx = RequestContext(
            request_id=state.get("request_id"),  # the server's own (api.http.middleware)
            ip=state.get("client_ip", request.client.host if request.client else None),
            route=getattr(route, "name", None),
            path_params=dict(request.path_params),
            caller_request_id=state.get("caller_request_id"),
            claimed_user=claimed_user(request.headers.get(USER_HEADER)),
        )
        request.state.ctx = ctx
    return ctx


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    svc = services(request)
    ctx = request_context(request)
    async with svc.db.sessionmaker() as session:
        unit = Unit(session, ctx, svc.settings)
        try:
            if request.method in ("GET", "HEAD"):
                await unit.reading()  # SQLite: no write lock for the reads (api.core.unit)
            await inputs.screen_form(request)  # the token endpoints' forms (other input: auth.require_scope)
            yield session
        except BaseException as exc:
            await _rollback(session, ctx)
            failure = database_problem(exc) or exc
            await _record_failure(svc, ctx, failure)
            if failure is not exc:
                raise failure from exc
            raise
        try:
            if ctx.caller is not None and not ctx.audit:
                unit.audit(ctx.route or "request")
            ctx.audited = ctx.audited or bool(ctx.audit)
            await unit.commit()
        except BaseException as exc:
            await _rollback(session, ctx)
            if unit.outcome_unknown:  # perhaps committed, with its entries: no "failed" beside them
                ctx.audited = True
                log.warning("the answer to a COMMIT was lost: the request's outcome is unknown (%s)",
                            type(exc.__cause__ or exc).__name__, extra={"request_id": ctx.request_id})
                if request.method in ("GET", "HEAD") and isinstance(exc, OutcomeUnknown):
                    # a read changes nothing of the caller's: only its audit entry is in doubt
                    raise OutcomeUnknown("The connection to the database was lost while the request was being "
                                         "committed; a read changes nothing, retry it") from exc.__cause__
                raise
            failure = database_problem(exc) or exc
            await _record_failure(svc, ctx, failure)
            if failure is not exc:
                raise failure from exc
            raise
    audit.spool_check(svc.db)  # the database took a unit: entries that waited for it go in now


async def _rollback(session: AsyncSession, ctx: RequestContext) -> None:
    try:
        await session.rollback()
    except Exception:  # a connection already lost: the server rolls back what it had
        log.warning("rollback failed", extra={"request_id": ctx.request_id})


async def record_failure(svc: Services, ctx: RequestContext, exc: BaseException) -> None:
    """Record a request that failed before (or without) a unit of work: the request
    middleware's last resort (:mod:`api.http.middleware`)."""
    await _record_failure(svc, ctx, exc)


async def _record_failure(svc: Services, ctx: RequestContext, exc: BaseException) -> None:
    ctx.audited = True  # however it is recorded: the middleware's last resort must not record it again
    status = 422 if isinstance(exc, RequestValidationError | sa_exc.DataError) else None
    try:
        answered = audit.outcome_of(exc, status)[1]
        if svc.denials is not None and aggregated(ctx, answered):
            # a refused unauthenticated caller: one entry per source and minute, then a count
            await svc.denials.record(ctx, exc, answered)
            return
        await audit.record_failure(svc.db, ctx, exc, status)
    except Exception:  # the database itself may be what failed; the log still has it
        log.exception("could not record a failed request in the audit chain",
                      extra={"request_id": ctx.request_id})


# scope="function": the transaction ends (commit or rollback) before the response is sent, so
# a caller never sees a success that was not committed.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


async def _services(request: Request) -> Services:
    """:func:`services` as a dependency (``async``: a plain function would be run in the thread pool)."""
    return services(request)


ServicesDep = Annotated[Services, Depends(_services)]


