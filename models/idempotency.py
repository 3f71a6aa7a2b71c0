"""Idempotency keys of creating POSTs, per client, kept at least 24 hours."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import ts_column, utcnow


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"

    client_id: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    status_code: int
    response_body: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    expires_at: datetime = Field(sa_column=ts_column(nullable=False, index=True))
