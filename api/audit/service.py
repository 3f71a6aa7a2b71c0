"""Which audit chain, and whose entries in it, an auditor reads; verifying it and signing its
head. The API (api/audit/routes.py) and the console share these."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, tokens
from api.core.context import Caller
from api.core.errors import NotFound
from api.core.keys import KeyStore
from models.regions import province_of


def chain_for(caller: Caller, chain: str | None) -> str:
    """An auditor reads the chain of its own province."""
    own = province_of(caller.jurisdiction)
    if chain is not None and chain != own:
        raise NotFound(f"No audit chain {chain}")
    return own or ""


def within(caller: Caller) -> str | None:
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


async def verify(session: AsyncSession, keys: KeyStore, issuer: str, key: str,
                 checkpoint: str | None) -> tuple[audit.VerifyResult, tuple[int, str] | None]:
    """Recompute chain ``key`` on the request's own session (one pooled connection; a GET's
    transaction only reads), from ``checkpoint``'s entry when one is given (a checkpoint of
    another chain is :class:`api.core.audit.BadCheckpoint`), and record the verification."""
    expect = None
    if checkpoint is not None:
        cp = await audit.read_checkpoint(keys, issuer, checkpoint, session)
        if cp.chain != key:
            raise audit.BadCheckpoint(f"The checkpoint is of chain {cp.chain}, not {key}")
        expect = (cp.seq, cp.hash)
    result = await audit.verify(session, key, expect)
    audit.record(session, "audit.verify", resource_type="audit_chain", resource_id=key,
                 ok=result.ok, checked=result.checked, first_bad_seq=result.first_bad_seq,
                 checkpoint_seq=expect[0] if expect else None, from_seq=result.from_seq)
    return result, expect


async def checkpoint(session: AsyncSession, keys: KeyStore, issuer: str, key: str) -> tuple[tokens.Checkpoint, str]:
    """The chain's head, signed (on the request's own session), and its audit entry."""
    cp, signed = await audit.make_checkpoint(session, keys, issuer, key)
    audit.record(session, "audit.checkpoint", resource_type="audit_chain", resource_id=key, seq=cp.seq)
    return cp, signed
