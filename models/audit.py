"""The audit chain: append-only, each entry's hash covering the previous one's."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import ts_column
from models.columns import str_enum

GENESIS_HASH = "0" * 64


class Outcome(StrEnum):
    allowed = "allowed"
    denied = "denied"
    failed = "failed"


class AuditHead(SQLModel, table=True):
    """The head of one chain (one per province): appenders serialise on this row."""

    __tablename__ = "audit_head"

    chain: str = Field(primary_key=True, max_length=16)
    seq: int = Field(default=0, sa_type=sa.BigInteger)
    hash: str = Field(default=GENESIS_HASH, max_length=64)
    prev_hash: str = Field(default=GENESIS_HASH, max_length=64)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (sa.Index("ix_audit_event_occurred_at", "occurred_at"),)

    chain: str = Field(primary_key=True, max_length=16)
    seq: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False})
    id: uuid.UUID = Field(unique=True)
    occurred_at: datetime = Field(sa_column=ts_column(nullable=False))
    client_id: str | None = Field(default=None, index=True, max_length=64)
    agency: str | None = Field(default=None, index=True, max_length=64)
    action: str = Field(index=True, max_length=100)
    resource_type: str | None = Field(default=None, max_length=50)
    resource_id: str | None = Field(default=None, max_length=100)
    outcome: Outcome = Field(sa_type=str_enum(Outcome, 10))
    request_id: str | None = Field(default=None, max_length=200)
    body: str  # canonical JSON of the event: what the hash covers
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditSubject(SQLModel, table=True):
    """Index of every resource an audit event touched ("who looked at this record?")."""

    __tablename__ = "audit_subject"
    __table_args__ = (sa.Index("ix_audit_subject_resource", "resource_type", "resource_id"),)

    event_id: uuid.UUID = Field(primary_key=True)
    resource_type: str = Field(primary_key=True, max_length=50)
    resource_id: str = Field(primary_key=True, max_length=100)
