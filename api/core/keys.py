"""Signing keys: generated on first start, persisted (private half encrypted with the data key),
rotated with overlap.

Each process keeps the keys it needs in memory, built once into signing and verification
objects (building them per request would double the cost of every call; a signing object
built from the PEM each time cost ≈ 34 ms a token, python-jose checking the RSA key again). It
reloads them from the database when a token names a ``kid`` it does not know (another process
rotated) and every :data:`REFRESH_SECONDS`, so a rotation reaches every process of a cluster.

**A request never waits for a reload, and never takes a connection for one.** The periodic
refresh runs in a task of its own (one at a time, on a pooled connection it alone holds); the
requests go on with the keys they have meanwhile, so a refresh stuck on the database holds up
no authentication. What a request must read itself (a ``kid`` it does not know, a checkpoint's
archived key) it reads on its own session, the one connection it holds. No lock is held across
database I/O: a reload builds the new set apart and puts it in place in one assignment.

A retired key stays in the JWKS, and keeps verifying, until every token it signed has expired.

**Every stored key is authenticated by the data key.** The database is not trusted to say which
public keys are the service's: someone who can write to it but does not hold the data key could
otherwise insert a public key of their own and sign tokens (reading every NIK) or audit
checkpoints with it. So a key is used only through its private half, which is AES-GCM
encrypted with the data key and its ``kid`` as associated data: the verifying public key is
derived from the decrypted private key, and the stored ``public_jwk`` must be exactly that key.
A row that does not decrypt under the data key, or whose public half differs, is refused for
tokens, the JWKS and checkpoints alike, and a warning names its ``kid``. Rows sealed before the
``kid`` was bound (associated data ``signing_key.private`` alone) are still read: their key is
authenticated all the same, only their name is not, and renaming one of the service's own keys
gives nobody a key they did not have.

Creating and rotating keys are writes like any other: they go through a unit of work and leave
``keys.create`` / ``keys.rotate`` on the audit chain.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk
from jose.backends.base import Key
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock, crypto
from api.core.db import Database
from api.core.sql import dialect_of
from api.core.unit import operator_unit, unit_of
from models import SigningKey

log = logging.getLogger("sinergi.keys")

REFRESH_SECONDS = 30
_LEGACY_CONTEXT = "signing_key.private"  # rows sealed before the kid was bound


def _context(kid: str) -> str:
    """The associated data of a private key: its ``kid`` is bound to it."""
    return f"signing_key.private:{kid}"


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    public_jwk: dict[str, Any]
    verifier: Key
    retired_at: datetime | None


class RefusedKey(Exception):
    """A stored key that is not the service's: its private half does not decrypt under the
    data key, or its public half is not the one of that private key."""


def _b64u_uint(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def _public_jwk(kid: str, private: rsa.RSAPrivateKey) -> dict[str, Any]:
    numbers = private.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": _b64u_uint(numbers.n), "e": _b64u_uint(numbers.e)}


def generate_key(data_key: bytes) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kid = uuid.uuid4().hex[:16]
    return SigningKey(kid=kid, private_key_enc=crypto.encrypt(pem, context=_context(kid), key=data_key),
                      public_jwk=json.dumps(_public_jwk(kid, private)))


def open_key(kid: str, private_key_enc: str, public_jwk: str,
             data_key: bytes) -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    """The private key and the public JWK of a stored key, both authenticated by the data key;
    :class:`RefusedKey` when the row is not one the service made (see the module's docstring)."""
    try:
        try:
            pem = crypto.decrypt(private_key_enc, context=_context(kid), key=data_key)
        except InvalidTag:
            pem = crypto.decrypt(private_key_enc, context=_LEGACY_CONTEXT, key=data_key)
        # The bytes are authenticated by AES-GCM: they are the key this service generated, so
        # the RSA consistency checks (~30 ms a key) would prove nothing more.
        private = serialization.load_pem_private_key(pem.encode(), password=None, unsafe_skip_rsa_key_validation=True)
    except (InvalidTag, ValueError, TypeError):
        raise RefusedKey("its private key does not decrypt under the data key") from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise RefusedKey("it is not an RSA key")
    public = _public_jwk(kid, private)
    try:
        stored = json.loads(public_jwk)
    except ValueError:
        stored = None
    if stored != public:
        raise RefusedKey("its public key is not the one of its private key")
    return private, public


async def _lock_keys(session: AsyncSession) -> None:
    """Serialise key creation and rotation across processes."""
    if dialect_of(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(7261001)"))
    # SQLite: the transaction is BEGIN IMMEDIATE already.


def _usable(key: SigningKey, data_key: bytes) -> bool:
    try:
        open_key(key.kid, key.private_key_enc, key.public_jwk, data_key)
    except RefusedKey as exc:
        log.warning("signing key %r refused: %s", key.kid, exc)
        return False
    return True


async def ensure_active_key(db: Database, actor: str = "service") -> None:
    """Create the first signing key if there is none the service can use (first start, or
    only keys that are not sealed with this data key); audited as ``keys.create``."""
    async with operator_unit(db, actor) as session:
        await ensure_active_key_in(session)


async def ensure_active_key_in(session: AsyncSession) -> None:
    """:func:`ensure_active_key` inside the unit ``session`` belongs to (its entry is that
    unit's)."""
    data_key = unit_of(session).settings.data_key_bytes
    await _lock_keys(session)
    active = (await session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None)))).all()
    if any(_usable(key, data_key) for key in active):
        return
    new = generate_key(data_key)
    session.add(new)
    await session.flush()
    unit_of(session).audit("keys.create", resource_type="signing_key", resource_id=new.kid, kid=new.kid,
                           refused=sorted(k.kid for k in active) or None)


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


@dataclass(frozen=True)
class _Opened:
    signer: Key  # the private key, as python-jose signs with it
    public_jwk: dict[str, Any]
    verifier: Key


Reader = AsyncSession | AsyncConnection  # the request's session, or a connection of its own


class KeyStore:
    def __init__(self, db: Database, token_ttl: int) -> None:
        self.db = db
        self.token_ttl = token_ttl
        self._keys: dict[str, LoadedKey] = {}
        self._signing: tuple[str, Key] | None = None  # kid, the key that signs
        self._refused: frozenset[str] = frozenset()  # kids of stored rows that are not the service's
        # Each stored row is decrypted and checked once per process: (kid, ciphertext, public JWK)
        # -> the opened key, or None for a refused row (warned about once).
        self._opened: dict[tuple[str, str, str], _Opened | None] = {}
        self._loaded_at = 0.0
        self._refresh: asyncio.Task[None] | None = None  # the periodic reload, while it runs

    def _keep_until(self, retired_at: datetime) -> datetime:
        # Tokens signed just before retirement (by a process that had not refreshed yet) live
        # token_ttl past the refresh window.
        return retired_at + timedelta(seconds=self.token_ttl + REFRESH_SECONDS + 60)

    def _open(self, kid: str, private_key_enc: str, public_jwk: str) -> _Opened | None:
        """A stored row as a usable key, or None when it is refused (see :func:`open_key`)."""
        row = (kid, private_key_enc, public_jwk)
        if row in self._opened:
            return self._opened[row]
        opened: _Opened | None
        try:
            private, public = open_key(kid, private_key_enc, public_jwk, self.db.settings.data_key_bytes)
            opened = _Opened(jwk.construct(private, "RS256"), public, jwk.construct(public, "RS256"))
        except RefusedKey as exc:
            log.warning("signing key %r refused: %s; it verifies nothing", kid, exc)
            opened = None
        if len(self._opened) >= 256:  # rows replaced over a long life; a handful are live
            self._opened.clear()
        self._opened[row] = opened
        return opened

    async def load(self, reader: Reader | None = None) -> None:
        """Read the stored keys and put the usable ones in place (in one assignment: a request
        sees the old set or the new one). ``reader``: the request's session (or a connection);
        without one, a connection of the key store's own (start-up, the periodic refresh)."""
        stmt = (select(SigningKey.kid, SigningKey.public_jwk, SigningKey.private_key_enc, SigningKey.retired_at)
                .order_by(col(SigningKey.created_at)))
        if reader is None:
            async with self.db.read() as conn:
                rows = (await conn.execute(stmt)).all()
        else:
            rows = (await reader.execute(stmt)).all()
        now = clock.now()
        keys: dict[str, LoadedKey] = {}
        refused: set[str] = set()
        signing = None
        for row in rows:
            if row.retired_at is not None and self._keep_until(row.retired_at) < now:
                continue
            opened = self._open(row.kid, row.private_key_enc, row.public_jwk)
            if opened is None:
                refused.add(row.kid)
                continue
            keys[row.kid] = LoadedKey(row.kid, opened.public_jwk, opened.verifier, row.retired_at)
            if row.retired_at is None:
                signing = (row.kid, opened.signer)
        self._keys, self._signing, self._refused = keys, signing, frozenset(refused)
        self._loaded_at = time.monotonic()

    def _fresh(self) -> None:
        """Past :data:`REFRESH_SECONDS`, start the refresh (one at a time) and go on with the
        keys as they are: the caller waits for nothing."""
        if time.monotonic() - self._loaded_at <= REFRESH_SECONDS or self._refresh is not None:
            return
        self._refresh = asyncio.ensure_future(self._refresh_now())

    async def _refresh_now(self) -> None:
        try:
            await self.load()
        except Exception as exc:  # the database is away: keep the keys, try again on a later use
            log.warning("signing keys not refreshed: %s", type(exc).__name__)
            self._loaded_at = time.monotonic() - REFRESH_SECONDS + 5
        finally:
            self._refresh = None

    async def close(self) -> None:
        """Stop a refresh that is still running (the application's shutdown)."""
        task = self._refresh
        if task is not None:
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled, or failed: either way it is over
                pass

    async def signing_key(self, session: AsyncSession | None = None) -> tuple[str, Key]:
        """The active key. Should none be known (never, after a normal start), it is read, and
        if need be made, on ``session``, a unit of work (the request's)."""
        self._fresh()
        if self._signing is None and session is not None:
            await self.load(session)
            if self._signing is None:
                await ensure_active_key_in(session)
                await self.load(session)
        elif self._signing is None:
            await ensure_active_key(self.db)
            await self.load()
        assert self._signing is not None
        return self._signing

    async def verifier(self, kid: str, session: AsyncSession | None = None) -> Key | None:
        """The key that verifies tokens of ``kid``. A ``kid`` not known here but stored (made
        by a rotation in another process) is looked up on ``session``, the request's."""
        self._fresh()
        key = self._keys.get(kid)
        if key is None and kid not in self._refused and await self._stored(kid, session):
            await self.load(session)
            key = self._keys.get(kid)
        if key is None:
            return None
        if key.retired_at is not None and self._keep_until(key.retired_at) < clock.now():
            return None
        return key.verifier

    async def archived_verifier(self, kid: str, reader: Reader | None = None) -> Key | None:
        """The public key ``kid`` even long after it was retired (audit checkpoints outlive
        the tokens of their key); None for a key the service never had or a refused row.
        Read on ``reader`` (the request's session), else on a connection of its own."""
        stmt = (select(SigningKey.kid, SigningKey.private_key_enc, SigningKey.public_jwk)
                .where(SigningKey.kid == kid[:64]))
        if reader is None:
            async with self.db.read() as conn:
                row = (await conn.execute(stmt)).first()
        else:
            row = (await reader.execute(stmt)).first()
        if row is None:
            return None
        opened = self._open(row.kid, row.private_key_enc, row.public_jwk)
        return None if opened is None else opened.verifier

    async def _stored(self, kid: str, reader: Reader | None) -> bool:
        """One primary-key lookup: an unknown ``kid`` costs no more than a normal call's
        client lookup, and a key rotated in by another process is picked up at once."""
        stmt = select(SigningKey.kid).where(SigningKey.kid == kid[:64])
        if reader is None:
            async with self.db.read() as conn:
                return (await conn.execute(stmt)).first() is not None
        return (await reader.execute(stmt)).first() is not None

    async def jwks(self) -> dict[str, Any]:
        """The keys that verify tokens now: only those authenticated by the data key."""
        self._fresh()
        return {"keys": [k.public_jwk for k in self._keys.values()]}
