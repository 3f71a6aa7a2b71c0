"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response

from api.agencies.routes import router as agencies_router
from api.audit.routes import router as audit_router
from api.console import routes as console
from api.core.db import Database
from api.core.keys import KeyStore, ensure_active_key
from api.core.settings import Settings, get_settings
from api.events.routes import router as events_router
from api.http import problems
from api.http.denials import DenialLedger
from api.http.logs import configure as configure_logs
from api.http.middleware import RequestMiddleware
from api.http.ratelimit import RateLimitMiddleware, make_limiter
from api.http.session import Services
from api.notices.routes import router as notices_router
from api.oauth.routes import oauth_error_reply
from api.oauth.routes import router as oauth_router
from api.oauth.service import OAuthError
from api.officers.routes import router as officers_router
from api.ops.routes import router as ops_router
from api.referrals.routes import router as referrals_router
from api.returnees.routes import router as returnees_router
from api.stats.routes import router as stats_router

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
        await ensure_active_key(db)  # first start: make and persist the signing key
        await keys.load()
        ledger = DenialLedger(db)
        app.state.services = Services(settings=settings, db=db, keys=keys, limiter=make_limiter(db), denials=ledger)
        ledger.start()
        try:
            yield
        finally:
            await ledger.stop()  # the open minutes' denial summaries
            await db.dispose()

    app = FastAPI(
        title="Sinergi",
        version="1.0.0",
        summary="Inter-agency data exchange for preventing and handling human trafficking (TPPO) "
        "in Kalimantan Barat",
        lifespan=lifespan,
    )
    problems.install(app)
    console.install(app)  # the console's refusals are redirects and HTML pages, not problem+json

    @app.exception_handler(OAuthError)
    async def _oauth_error(_request: Request, exc: OAuthError) -> Response:
        return oauth_error_reply(exc)  # RFC 6749 §5.2 at the token endpoints, not problem+json

    for router in (ops_router, oauth_router, agencies_router, audit_router, returnees_router, notices_router,
                   referrals_router, stats_router, events_router, officers_router, console.router):
        app.include_router(router)
    app.add_middleware(RateLimitMiddleware)  # inside RequestMiddleware: its 429s get a request id and a log line
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes,
                       trusted_proxies=settings.trusted_proxies)
    return app
