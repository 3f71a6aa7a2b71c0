"""Liveness, readiness and metrics (outside ``/v1``, unauthenticated, not audited)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.core.migrate import current_revision, head_revision
from api.http.session import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", name="healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", name="readyz", responses={503: {
    "description": "the database does not answer, or its schema is not at the migrations' head",
    "content": {"application/json": {"example": {"status": "unavailable", "database": "unreachable"}}}}})
async def readyz(svc: ServicesDep) -> JSONResponse:
    """The database answers and its schema is at the migrations' head."""
    try:
        async with svc.db.read() as conn:
            await conn.execute(text("SELECT 1"))
            current = await conn.run_sync(current_revision)
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    head = head_revision()
    if current != head:
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "migration": current, "expected": head}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": "ok", "migration": current})


@router.get("/metrics", name="metrics", response_class=PlainTextResponse)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
