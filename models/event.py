"""The outbox: events partners react to, numbered in commit order."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import ts_column


class EventHead(SQLModel, table=True):
    """Position counter of one feed (one per province); writers serialise on this row."""

    __tablename__ = "event_head"

    key: str = Field(primary_key=True, max_length=16)
    pos: int = Field(default=0, sa_type=sa.BigInteger)


class ChangeHead(SQLModel, table=True):
    """Change-position counter of one list (``returnee``, ``referral``): the unit of work
    advances it just before commit, so change positions are in commit order (api/core/changes.py)."""

    __tablename__ = "change_head"

    key: str = Field(primary_key=True, max_length=16)
    pos: int = Field(default=0, sa_type=sa.BigInteger)


class Event(SQLModel, table=True):
    __tablename__ = "event"

    key: str = Field(primary_key=True, max_length=16)
    pos: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False})
    id: uuid.UUID = Field(unique=True)
    type: str = Field(max_length=64, index=True)
    occurred_at: datetime = Field(sa_column=ts_column(nullable=False))
    region: str | None = Field(default=None, max_length=16)  # who in this jurisdiction may see it
    audience: str = Field(default="", max_length=1000)  # agency codes that may see it, space-separated
    data: str  # JSON
