"""Which audit chain, and whose entries in it, an auditor reads (the API and the console share this)."""

from __future__ import annotations

from api.core.context import Caller
from api.core.errors import NotFound
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
