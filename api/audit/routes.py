from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from api import auth
from api.audit import service
from api.audit.schemas import AuditEventPublic, AuditPage, VerifyHead, VerifyReply
from api.deps import ServicesDep, SessionDep
from api.errors import NotFound
from api.pagination import decode_cursor, encode_cursor
from models.regions import province_of

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def _chain(caller: auth.Caller, chain: str | None) -> str:
    """An auditor reads the chain of its own province."""
    own = province_of(caller.jurisdiction)
    if chain is not None and chain != own:
        raise NotFound(f"No audit chain {chain}")
    return own or ""


@router.get("", response_model=AuditPage, name="audit.list")
async def list_audit(
    caller: auth.AuditRead,
    session: SessionDep,
    actor: Annotated[str | None, Query(description="client id")] = None,
    agency: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    action: str | None = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from", description="RFC 3339, with an offset")] = None,
    to: Annotated[AwareDatetime | None, Query(description="RFC 3339, with an offset")] = None,
    chain: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Audit events, newest first: who did what to which record, and with what outcome."""
    key = _chain(caller, chain)
    after = int(decode_cursor(cursor).get("seq", 0)) if cursor else None
    rows = await service.list_events(
        session, chain=key, after_seq=after, limit=limit + 1, client_id=actor, agency=agency,
        action=action, resource_type=resource_type, resource_id=resource_id, since=from_, until=to,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    service.record(session, "audit.list", resource_type="audit_chain", resource_id=key,
                   filters={k: v for k, v in {"actor": actor, "agency": agency, "resource_type": resource_type,
                                              "resource_id": resource_id, "action": action}.items() if v})
    return AuditPage(
        items=[AuditEventPublic.of(r) for r in rows],
        next_cursor=encode_cursor({"seq": rows[-1].seq}) if more and rows else None,
    )


@router.get("/verify", response_model=VerifyReply, name="audit.verify")
async def verify(caller: auth.AuditRead, session: SessionDep, svc: ServicesDep, chain: str | None = None) -> VerifyReply:
    """Recompute the chain: any edited, deleted or reordered entry is reported."""
    key = _chain(caller, chain)
    result = await service.verify(svc.db, key)
    service.record(session, "audit.verify", resource_type="audit_chain", resource_id=key,
                   ok=result.ok, checked=result.checked, first_bad_seq=result.first_bad_seq)
    return VerifyReply(ok=result.ok, chain=key, checked=result.checked,
                       head=VerifyHead(seq=result.head_seq, hash=result.head_hash),
                       first_bad_seq=result.first_bad_seq, reason=result.reason)
