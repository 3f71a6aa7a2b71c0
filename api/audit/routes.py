from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.audit import repository
from api.audit.schemas import AUDIT, AuditEventPublic, AuditPage, CheckpointReply, VerifyHead, VerifyReply
from api.core import audit as audit_chain
from api.core.errors import NotFound
from api.core.params import INSTANT_HELP, Instant
from api.core.unit import unit_of
from api.http import auth
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import ServicesDep, SessionDep
from models.regions import province_of

router = APIRouter(prefix="/v1/audit", tags=["audit"],
                   responses={404: {"description": "`chain` is not the caller's province's chain"}})


def _chain(caller: auth.Caller, chain: str | None) -> str:
    """An auditor reads the chain of its own province."""
    own = province_of(caller.jurisdiction)
    if chain is not None and chain != own:
        raise NotFound(f"No audit chain {chain}")
    return own or ""


def _within(caller: auth.Caller) -> str | None:
    """Whose entries an auditor reads. A province's auditor (jurisdiction ``61``) reads its
    whole chain. An auditor of a smaller jurisdiction (a district's Inspektorat, ``61.07``)
    reads the entries whose ``agency`` lies within its own: what its district's agencies did,
    to whichever record (and the few entries made without a caller in such an agency's name:
    the operator creating its client). It does not read what agencies above or beside it did
    (the province's BP3MI reading a Bengkayang returnee is the province's to oversee), nor
    entries without an agency (unauthenticated callers, the operator's own work). Its
    verification and checkpoints still cover the whole chain: their replies are counts and
    hashes, never an entry."""
    own = province_of(caller.jurisdiction)
    return None if caller.jurisdiction == own else caller.jurisdiction


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
    key = _chain(caller, chain)
    settings = unit_of(session).settings
    page = await repository.list_events(
        session, chain=key, after=AUDIT.open(settings, cursor), limit=limit, client_id=actor, agency=agency,
        action=action, resource_type=resource_type, resource_id=resource_id, since=from_, until=to,
        within=_within(caller),
    )
    audit_chain.record(session, "audit.list", resource_type="audit_chain", resource_id=key, within=_within(caller),
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
    key = _chain(caller, chain)
    # Everything is read on the request's own session: one pooled connection for the whole
    # request. A GET's transaction only reads (on SQLite a deferred one, without the write lock),
    # and this request's entry is written when it ends (api.core.unit).
    expect = None
    if checkpoint is not None:
        cp = await audit_chain.read_checkpoint(svc.keys, svc.settings.issuer, checkpoint, session)
        if cp.chain != key:
            raise audit_chain.BadCheckpoint(f"The checkpoint is of chain {cp.chain}, not {key}")
        expect = (cp.seq, cp.hash)
    result = await audit_chain.verify(session, key, expect)
    audit_chain.record(session, "audit.verify", resource_type="audit_chain", resource_id=key,
                   ok=result.ok, checked=result.checked, first_bad_seq=result.first_bad_seq,
                   checkpoint_seq=expect[0] if expect else None, from_seq=result.from_seq)
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
    key = _chain(caller, chain)
    cp, signed = await audit_chain.make_checkpoint(session, svc.keys, svc.settings.issuer, key)  # on the session
    audit_chain.record(session, "audit.checkpoint", resource_type="audit_chain", resource_id=key, seq=cp.seq)
    return CheckpointReply(chain=cp.chain, seq=cp.seq, hash=cp.hash, checkpoint=signed)
