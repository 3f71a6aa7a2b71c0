"""Rate-limit counters shared by the server processes of one PostgreSQL database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class RateLimitCounter(SQLModel, table=True):
    """How many requests one key (``client:…``, ``source:…``, ``token:…``) made in one fixed
    window (``window_start``: Unix seconds, a multiple of the window length).

    Only the PostgreSQL limiter uses it (:mod:`api.http.ratelimit`); there the table is
    ``UNLOGGED``: counters are worth nothing after a crash, and an unlogged write needs no WAL
    flush at commit. On SQLite the table exists (the migrations build the same schema on both)
    but stays empty: the limiter there counts in memory.
    """

    __tablename__ = "rate_limit_counter"

    key: str = Field(primary_key=True, max_length=200)
    window_start: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False})
    count: int = Field(default=0, sa_type=sa.BigInteger)
