"""Liveness, readiness and metrics (outside ``/v1``, unauthenticated, not audited)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.core.errors import ServiceUnavailable
from api.http.session import ServicesDep
from api.ops import service

router = APIRouter(tags=["operations"])


@router.get("/healthz", name="healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (it touches nothing else: readiness is ``/readyz``)."""
    return {"status": "ok"}


@router.get("/readyz", name="readyz", responses={503: {"description": "not ready: a problem whose detail names "
                                                                      "the check that failed"}})
async def readyz(svc: ServicesDep) -> JSONResponse:
    """The database answers and its schema is at the migrations' head. Answers within
    ``SINERGI_READYZ_TIMEOUT`` whatever the database does; when not ready, a 503 problem whose
    ``detail`` says which check failed."""
    ready = await service.readiness(svc.db, svc.settings.readyz_timeout)
    if not ready.ok:
        problem = ServiceUnavailable(ready.detail, headers={"Retry-After": "5"})
        problem.extra.update(ready.checks)  # what each check found, beside the detail
        raise problem
    return JSONResponse({"status": "ok", **ready.checks})


@router.get("/metrics", name="metrics", response_class=PlainTextResponse)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
