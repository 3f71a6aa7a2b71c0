"""Signing keys: generated on first start, persisted (private half encrypted with the data key),
rotated with overlap.

Each process keeps the keys it needs in memory, built once into verification objects (building
them per request would double the cost of every call). It reloads them from the database when
a token names a ``kid`` it does not know (another process rotated) and every
:data:`REFRESH_SECONDS`, so a rotation reaches every process of a cluster.

A retired key stays in the JWKS, and keeps verifying, until every token it signed has expired.

Creating and rotating keys are writes like any other: they go through a unit of work and leave
``keys.create`` / ``keys.rotate`` on the audit chain.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk
from jose.backends.base import Key
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock, crypto
from api.core.db import Database
from api.core.unit import operator_unit, unit_of
from models import SigningKey

REFRESH_SECONDS = 30
_CONTEXT = "signing_key.private"


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    public_jwk: dict[str, Any]
    verifier: Key
    retired_at: datetime | None


def _b64u_uint(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def generate_key(data_key: bytes) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    numbers = private.public_key().public_numbers()
    kid = uuid.uuid4().hex[:16]
    public = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": _b64u_uint(numbers.n), "e": _b64u_uint(numbers.e)}
    return SigningKey(kid=kid, private_key_enc=crypto.encrypt(pem, context=_CONTEXT, key=data_key), public_jwk=json.dumps(public))


async def _lock_keys(session: AsyncSession) -> None:
    """Serialise key creation and rotation across processes."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(7261001)"))
    # SQLite: the transaction is BEGIN IMMEDIATE already.


async def ensure_active_key(db: Database, actor: str = "service") -> None:
    """Create the first signing key if there is none (first start); audited as ``keys.create``."""
    async with operator_unit(db, actor) as session:
        await _lock_keys(session)
        active = (await session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None)))).first()
        if active is not None:
            return
        new = generate_key(db.settings.data_key_bytes)
        session.add(new)
        unit_of(session).audit("keys.create", resource_type="signing_key", resource_id=new.kid, kid=new.kid)


async def rotate(db: Database, actor: str = "cli") -> str:
    """Retire the active key(s) and make a new one; returns the new ``kid``. Audited as
    ``keys.rotate``."""
    async with operator_unit(db, actor) as session:
        await _lock_keys(session)
        now = clock.now()
        retired = []
        for key in (await session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None)))).all():
            key.retired_at = now
            session.add(key)
            retired.append(key.kid)
        new = generate_key(db.settings.data_key_bytes)
        new.created_at = now
        session.add(new)
        unit_of(session).audit("keys.rotate", resource_type="signing_key", resource_id=new.kid, kid=new.kid,
                               retired=sorted(retired))
        return new.kid


class KeyStore:
    def __init__(self, db: Database, token_ttl: int) -> None:
        self.db = db
        self.token_ttl = token_ttl
        self._keys: dict[str, LoadedKey] = {}
        self._signing: tuple[str, str] | None = None  # kid, private PEM
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def _keep_until(self, retired_at: datetime) -> datetime:
        # Tokens signed just before retirement (by a process that had not refreshed yet) live
        # token_ttl past the refresh window.
        return retired_at + timedelta(seconds=self.token_ttl + REFRESH_SECONDS + 60)

    async def load(self) -> None:
        async with self._lock:
            async with self.db.read() as conn:
                result = await conn.execute(
                    select(SigningKey.kid, SigningKey.public_jwk, SigningKey.private_key_enc, SigningKey.retired_at)
                    .order_by(SigningKey.created_at)
                )
                rows = result.all()
            now = clock.now()
            keys: dict[str, LoadedKey] = {}
            signing = None
            for row in rows:
                if row.retired_at is not None and self._keep_until(row.retired_at) < now:
                    continue
                public = json.loads(row.public_jwk)
                keys[row.kid] = LoadedKey(row.kid, public, jwk.construct(public, "RS256"), row.retired_at)
                if row.retired_at is None:
                    signing = (row.kid, row.private_key_enc)
            self._keys = keys
            if signing is not None and (self._signing is None or self._signing[0] != signing[0]):
                self._signing = (signing[0], crypto.decrypt(signing[1], context=_CONTEXT, key=self.db.settings.data_key_bytes))
            self._loaded_at = time.monotonic()

    async def _fresh(self) -> None:
        if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            await self.load()

    async def signing_key(self) -> tuple[str, str]:
        await self._fresh()
        if self._signing is None:
            await ensure_active_key(self.db)
            await self.load()
        assert self._signing is not None
        return self._signing

    async def verifier(self, kid: str) -> Key | None:
        await self._fresh()
        key = self._keys.get(kid)
        if key is None and await self._stored(kid):
            await self.load()  # made by a rotation in another process
            key = self._keys.get(kid)
        if key is None:
            return None
        if key.retired_at is not None and self._keep_until(key.retired_at) < clock.now():
            return None
        return key.verifier

    async def archived_verifier(self, kid: str) -> Key | None:
        """The public key ``kid`` even long after it was retired (audit checkpoints outlive
        the tokens of their key)."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(SigningKey.public_jwk).where(SigningKey.kid == kid[:64]))).first()
        return None if row is None else jwk.construct(json.loads(row[0]), "RS256")

    async def _stored(self, kid: str) -> bool:
        """One primary-key lookup: an unknown ``kid`` costs no more than a normal call's
        client lookup, and a key rotated in by another process is picked up at once."""
        async with self.db.read() as conn:
            found = await conn.execute(select(SigningKey.kid).where(SigningKey.kid == kid[:64]))
            return found.first() is not None

    async def jwks(self) -> dict[str, Any]:
        await self._fresh()
        return {"keys": [k.public_jwk for k in self._keys.values()]}
