"""Token signing keys and revoked tokens."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import ts_column, utcnow


class SigningKey(SQLModel, table=True):
    """An RSA key pair; the private half is encrypted with the data key."""

    __tablename__ = "signing_key"

    kid: str = Field(primary_key=True, max_length=64)
    private_key_enc: str  # AES-GCM ciphertext of the PEM, urlsafe base64
    public_jwk: str  # JSON
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    retired_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))


class RevokedToken(SQLModel, table=True):
    __tablename__ = "revoked_token"

    jti: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=64)
    revoked_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    expires_at: datetime = Field(sa_column=ts_column(nullable=False))
