"""Officers: people of an agency who sign in to the console, and their sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import new_id, ts_column, utcnow


class Officer(SQLModel, table=True):
    """A person of an agency. ``scopes`` are a subset of what the agency's clients hold;
    ``password_hash`` is argon2id; ``totp_secret_enc`` is the TOTP secret encrypted with the
    data key (enrolled when the agency requires a second factor). ``password_must_change``: the
    password was set by someone else (a reset), so the next sign-in asks for a new one."""

    __tablename__ = "officer"
    __table_args__ = (sa.UniqueConstraint("email", name="uq_officer_email"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    agency_code: str = Field(foreign_key="agency.code", index=True, max_length=64)
    email: str = Field(max_length=254)
    name: str = Field(default="", max_length=200)
    scopes: str = Field(max_length=1000)  # space-separated
    password_hash: str = Field(max_length=200)
    totp_secret_enc: str | None = Field(default=None, max_length=400)
    failed_attempts: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    last_signin_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    password_must_change: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # the time step (RFC 6238) of the last second-factor code accepted: no code is accepted twice
    totp_last_step: int | None = Field(default=None, sa_type=sa.BigInteger)


class OfficerSession(SQLModel, table=True):
    """A signed-in browser. Only the hash of the cookie's value is stored; the CSRF token is
    the synchronizer token every form carries. ``stage`` is set while a sign-in is half done
    (the password was right, and the officer must still choose a new password, ``"password"``,
    or enrol a second factor, ``"totp"``): such a row opens no page. ``totp_candidate_enc`` is
    the TOTP secret being enrolled (encrypted as the officer's own), until a code confirms it."""

    __tablename__ = "officer_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    officer_id: uuid.UUID = Field(foreign_key="officer.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    expires_at: datetime = Field(sa_column=ts_column(nullable=False))
    stage: str | None = Field(default=None, max_length=16)
    totp_candidate_enc: str | None = Field(default=None, max_length=400)
