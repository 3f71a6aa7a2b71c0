"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response

from api.agencies.routes import router as agencies_router
from api.alerts.routes import public_router as warnings_router
from api.alerts.routes import router as alerts_router
from api.audit.routes import router as audit_router
from api.console import routes as console
from api.core.db import Database
from api.core.keys import KeyStore, ensure_active_key
from api.core.settings import Settings, get_settings
from api.events.routes import router as events_router
from api.http import docs, openapi, problems
from api.http.denials import DenialLedger
from api.http.logs import configure as configure_logs
from api.http.middleware import RequestMiddleware
from api.http.ratelimit import RateLimitMiddleware, make_limiter
from api.http.session import Services
from api.manifests.routes import router as manifests_router
from api.notices.routes import router as notices_router
from api.oauth.routes import oauth_error_reply
from api.oauth.routes import router as oauth_router
from api.oauth.service import OAuthError
from api.officers.routes import router as officers_router
from api.ops.routes import router as ops_router
from api.referrals.routes import router as referrals_router
from api.regions.routes import router as regions_router
from api.register.routes import router as register_router
from api.returnees.routes import router as returnees_router
from api.stats.routes import router as stats_router
from api.webhooks.routes import events as webhook_events
from api.webhooks.routes import router as webhooks_router
from api.webhooks.worker import Worker

log = logging.getLogger("sinergi.app")


def create_app(settings: Settings | None = None, *, configure_logging: bool = True) -> FastAPI:
    settings = settings or get_settings()
    if configure_logging:
        configure_logs(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.development_keys:
            # Only development mode gets here (any other refuses to start without real keys).
            log.warning("DEVELOPMENT KEYS IN USE for %s: personal data and tokens are protected by keys "
                        "published in the source code; never run like this with real records",
                        ", ".join(settings.development_keys))
        db = Database(settings)
        keys = KeyStore(db, settings.access_token_ttl)
        try:
            # A database that is not up yet (started together with the service, restarting) is
            # waited for, bounded, with a log line per attempt, instead of the process exiting.
            await db.wait_until_reachable(settings.db_startup_wait)
            await ensure_active_key(db)  # first start: make and persist the signing key
            await keys.load()
        except BaseException:
            await db.dispose()
            raise
        ledger = DenialLedger(db)
        app.state.services = Services(settings=settings, db=db, keys=keys, limiter=make_limiter(db), denials=ledger)
        ledger.start()
        worker = Worker(db) if settings.webhook_worker else None  # else `sinergi worker` delivers
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            await ledger.stop()  # the open minutes' denial summaries
            await keys.close()
            await db.dispose()

    app = FastAPI(
        title="Sinergi",
        version="1.0.0",
        summary="Inter-agency data exchange for preventing and handling human trafficking (TPPO) "
        "in Kalimantan Barat",
        lifespan=lifespan,
        docs_url=None,  # api.http.docs: the pages with their assets served here, not from a CDN
        redoc_url=None,
    )
    problems.install(app)
    docs.install(app)
    console.install(app)  # the console's refusals are redirects and HTML pages, not problem+json

    @app.exception_handler(OAuthError)
    async def _oauth_error(_request: Request, exc: OAuthError) -> Response:
        return oauth_error_reply(exc)  # RFC 6749 §5.2 at the token endpoints, not problem+json

    for router in (ops_router, oauth_router, agencies_router, audit_router, returnees_router, notices_router,
                   referrals_router, stats_router, events_router, regions_router, manifests_router,
                   webhooks_router, register_router, alerts_router, warnings_router, officers_router, console.router):
        app.include_router(router)
    app.webhooks.include_router(webhook_events)  # the events posted to subscribers, in the OpenAPI document
    openapi.install(app)  # the document declares every error, header and scope alternative (api/http/openapi.py)
    app.add_middleware(RateLimitMiddleware)  # inside RequestMiddleware: its 429s get a request id and a log line
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes,
                       trusted_proxies=settings.trusted_proxies, body_timeout=settings.body_timeout)
    return app
