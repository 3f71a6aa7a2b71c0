from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.audit import repository, service
from api.audit.schemas import AUDIT, AuditEventPublic, AuditPage, CheckpointReply, VerifyHead, VerifyReply
from api.core import audit as audit_chain
from api.core.params import INSTANT_HELP, Instant
from api.core.unit import unit_of
from api.http import auth
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import ServicesDep, SessionDep

router = APIRouter(prefix="/v1/audit", tags=["audit"],
                   responses={404: {"description": "`chain` is not the caller's province's chain"}})


@router.get("", response_model=AuditPage, name="audit.list")
async def list_audit(
    caller: auth.AuditRead,
    session: SessionDep,
    actor: Annotated[str | None, Query(description="client id")] = None,
    agency: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    action: str | None = None,
    from_: Annotated[Instant | None, Query(alias="from", description="at or after; " + INSTANT_HELP)] = None,
    to: Annotated[Instant | None, Query(description="before; " + INSTANT_HELP)] = None,
    chain: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> AuditPage:
    """Audit events, newest first: who did what to which record, and with what outcome. An
    auditor below the province sees only the entries of agencies within its jurisdiction."""
    key = service.chain_for(caller, chain)
    settings = unit_of(session).settings
    page = await repository.list_events(
        session, chain=key, after=AUDIT.open(settings, cursor), limit=limit, client_id=actor, agency=agency,
        action=action, resource_type=resource_type, resource_id=resource_id, since=from_, until=to,
        within=service.within(caller),
    )
    audit_chain.record(session, "audit.list", resource_type="audit_chain", resource_id=key, within=service.within(caller),
                   filters={k: v for k, v in {"actor": actor, "agency": agency, "resource_type": resource_type,
                                              "resource_id": resource_id, "action": action}.items() if v})
    return AuditPage(items=[AuditEventPublic.of(r) for r in page.items], next_cursor=AUDIT.seal(settings, page.next))


@router.get("/verify", response_model=VerifyReply, name="audit.verify")
async def verify(
    caller: auth.AuditRead,
    session: SessionDep,
    svc: ServicesDep,
    chain: str | None = None,
    checkpoint: Annotated[str | None, Query(description="a checkpoint from GET /v1/audit/checkpoint, kept "
                                            "outside the database: the chain must still hold it")] = None,
) -> VerifyReply:
    """Recompute the chain: any edited, deleted or reordered entry is reported, and with a
    ``checkpoint`` also a rewrite of the whole chain since it was taken. With a checkpoint the
    walk starts at the checkpoint's entry and reads nothing before it (``from_seq``): that
    part was proven when the checkpoint was taken."""
    key = service.chain_for(caller, chain)
    result, expect = await service.verify(session, svc.keys, svc.settings.issuer, key, checkpoint)
    return VerifyReply(ok=result.ok, chain=key, checked=result.checked, from_seq=result.from_seq,
                       head=VerifyHead(seq=result.head_seq, hash=result.head_hash),
                       first_bad_seq=result.first_bad_seq, reason=result.reason,
                       checkpoint=None if expect is None else VerifyHead(seq=expect[0], hash=expect[1]))


@router.get("/checkpoint", response_model=CheckpointReply, name="audit.checkpoint")
async def checkpoint(caller: auth.AuditRead, session: SessionDep, svc: ServicesDep,
                     chain: str | None = None) -> CheckpointReply:
    """The chain's head, signed by the service. Keep ``checkpoint`` outside Sinergi (the
    Inspektorat's own records); ``GET /v1/audit/verify?checkpoint=…`` later proves that the
    chain was not rewritten since, even by someone able to recompute every hash."""
    key = service.chain_for(caller, chain)
    cp, signed = await service.checkpoint(session, svc.keys, svc.settings.issuer, key)
    return CheckpointReply(chain=cp.chain, seq=cp.seq, hash=cp.hash, checkpoint=signed)
