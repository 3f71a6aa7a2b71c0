from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field

from api.core.pagination import Keyset, Page
from models import AuditEvent


class AuditEventPublic(BaseModel):
    seq: int
    chain: str
    id: str
    occurred_at: datetime
    client_id: str | None
    agency: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    subjects: list[dict[str, str]]
    outcome: str
    request_id: str | None
    detail: dict[str, Any]
    officer: str | None = Field(default=None, description="the officer (console session) who acted for the agency")
    on_behalf_of: str | None = Field(default=None, description="the person a partner system named behind its "
                                     "machine call (header Sinergi-User-Id): claimed, not verified")
    hash: str
    prev_hash: str

    @classmethod
    def of(cls, e: AuditEvent) -> AuditEventPublic:
        # What is shown is the hashed content itself, so what verify checks is what is read.
        doc = orjson.loads(e.body)
        return cls(
            seq=e.seq,
            chain=e.chain,
            id=doc["id"],
            occurred_at=e.occurred_at,
            client_id=doc["client_id"],
            agency=doc["agency"],
            action=doc["action"],
            resource_type=doc["resource_type"],
            resource_id=doc["resource_id"],
            subjects=[{"type": t, "id": i} for t, i in doc.get("subjects", [])],
            outcome=doc["outcome"],
            request_id=doc["request_id"],
            detail=doc.get("detail", {}),
            officer=doc.get("officer"),
            on_behalf_of=doc.get("on_behalf_of"),
            hash=e.hash,
            prev_hash=e.prev_hash,
        )


class AuditPage(Page[AuditEventPublic]):
    pass


AUDIT = Keyset("audit", (int,))  # by seq, newest first


class VerifyHead(BaseModel):
    seq: int
    hash: str


class VerifyReply(BaseModel):
    ok: bool
    chain: str
    checked: int
    from_seq: int = Field(default=1, description="the first entry checked: 1, or the checkpoint's entry (nothing "
                                                   "before a checkpoint is read)")
    head: VerifyHead
    first_bad_seq: int | None
    reason: str | None = None
    checkpoint: VerifyHead | None = None


class CheckpointReply(BaseModel):
    chain: str
    seq: int
    hash: str
    checkpoint: str = Field(description="JWS (RS256, typ sinergi-audit-checkpoint+jwt) over chain, seq, hash, iat; "
                                        "verifiable with the keys of /.well-known/jwks.json")
