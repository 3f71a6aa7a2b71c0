"""Officer accounts, sign-in and console sessions (the API, the command line and the console share this).

Passwords are argon2id (``argon2-cffi``); the second factor is TOTP (RFC 6238, ``pyotp``), its
secret encrypted with the data key. A session is a random token in an ``HttpOnly`` cookie; only
its SHA-256 is stored, with the synchronizer CSRF token every form carries, and it ends when it
has been idle for ``session_idle`` seconds or lived ``session_absolute``. ``signin_lockout_after``
failed sign-ins in a row lock the officer for ``signin_lockout`` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import argon2
import pyotp
import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, clock, crypto
from api.core.context import Caller
from api.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from api.core.scopes import Scope
from api.core.settings import Settings
from api.core.unit import unit_of
from api.officers.schemas import OfficerCreate, OfficerCreated
from models import Agency, AgencyKind, ApiClient, Officer, OfficerSession, Outcome

_HASHER = argon2.PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) parameters
_TOTP_CONTEXT = "officer.totp"
# A hash to verify against when the e-mail is unknown: the reply takes as long as for a known one.
_DUMMY_HASH = _HASHER.hash("no such officer " + secrets.token_hex(8))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def officer_client_id(officer_id: uuid.UUID) -> str:
    """What the audit entry's ``client_id`` column says for an officer's request."""
    return f"officer-{officer_id}"


async def agency_scopes(session: AsyncSession, agency_code: str) -> set[str]:
    """What the agency may do: the scopes of its enabled API clients."""
    rows = await session.exec(select(ApiClient.scopes).where(col(ApiClient.agency_code) == agency_code,
                                                             col(ApiClient.disabled_at).is_(None)))
    return {s for line in rows for s in line.split()}


class OutsideAgencyScopes(ValidationFailed):
    slug, title = "scopes-not-held", "The officer would hold scopes the agency does not"


async def create_officer(session: AsyncSession, agency_code: str, data: OfficerCreate,
                         by: Caller | None = None) -> OfficerCreated:
    """An officer of ``agency_code``. ``by``: the API caller, the operator (``admin``) or the
    agency's own administrator (``officers:manage``); ``None`` is the command line."""
    if by is not None and not by.has(Scope.admin) and by.agency != agency_code:
        raise NotFound(f"No agency {agency_code}")  # another agency's is as if it did not exist
    agency = await session.get(Agency, agency_code)
    if agency is None:
        raise NotFound(f"No agency {agency_code}")
    unknown = [s for s in data.scopes if s not in {str(x) for x in Scope}]
    if unknown:
        raise ValidationFailed(f"Unknown scopes: {' '.join(unknown)}")
    missing = sorted(set(data.scopes) - await agency_scopes(session, agency_code))
    if missing:
        raise OutsideAgencyScopes(f"Agency {agency_code} does not hold {' '.join(missing)}")
    if Scope.admin in data.scopes:
        raise Forbidden("admin")
    email = data.email.strip().lower()
    if (await session.exec(select(Officer.id).where(col(Officer.email) == email))).first() is not None:
        raise Conflict("An officer with this e-mail address exists")
    password = data.password or secrets.token_urlsafe(15)
    totp_uri = None
    officer = Officer(agency_code=agency_code, email=email, name=data.name, scopes=" ".join(data.scopes),
                      password_hash=hash_password(password))
    if agency.requires_totp:
        secret = pyotp.random_base32()
        officer.totp_secret_enc = crypto.encrypt(secret, context=_TOTP_CONTEXT,
                                                 key=unit_of(session).settings.data_key_bytes)
        totp_uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="Sinergi")
    session.add(officer)
    await session.flush()
    audit.record(session, "officer.create", resource_type="officer", resource_id=str(officer.id),
                 agency_code=agency_code, scopes=data.scopes, second_factor=agency.requires_totp)
    return OfficerCreated(id=officer.id, agency=agency_code, email=email, scopes=data.scopes,
                          password=None if data.password else password, totp_uri=totp_uri)


async def disable_officer(session: AsyncSession, email: str) -> Officer:
    """The officer can no longer sign in, and every session of theirs ends now."""
    officer = (await session.exec(select(Officer).where(col(Officer.email) == email.strip().lower()))).first()
    if officer is None:
        raise NotFound("No officer with this e-mail address")
    officer.disabled_at = clock.now()
    session.add(officer)
    await session.execute(sa.delete(OfficerSession).where(col(OfficerSession.officer_id) == officer.id))
    await session.flush()
    audit.record(session, "officer.disable", resource_type="officer", resource_id=str(officer.id),
                 agency_code=officer.agency_code)
    return officer


def totp_secret(officer: Officer, settings: Settings) -> str | None:
    if officer.totp_secret_enc is None:
        return None
    return crypto.decrypt(officer.totp_secret_enc, context=_TOTP_CONTEXT, key=settings.data_key_bytes)


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str  # the cookie's value
    csrf: str
    officer: Officer


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str  # "credentials", "second-factor", "locked"


async def sign_in(session: AsyncSession, settings: Settings, email: str, password: str,
                  code: str | None) -> SignedIn | Refused:
    """Check the credentials; a refusal is returned, not raised, so that the failed attempt it
    counts is committed with its audit entry."""
    email = (email or "").strip().lower()[:254]
    officer = (await session.exec(select(Officer).where(col(Officer.email) == email))).first()
    now = clock.now()
    if officer is None or officer.disabled_at is not None:
        password_matches(_DUMMY_HASH, password)
        audit.record(session, "officer.signin", outcome=Outcome.denied, resource_type="officer", reason="credentials")
        return Refused("credentials")
    ident: dict[str, Any] = {"resource_type": "officer", "resource_id": str(officer.id),
                             "agency_code": officer.agency_code}
    if officer.locked_until is not None and officer.locked_until > now:
        audit.record(session, "officer.signin", outcome=Outcome.denied, reason="locked", **ident)
        return Refused("locked")
    ok = password_matches(officer.password_hash, password)
    reason = "credentials"
    if ok:
        secret = totp_secret(officer, settings)
        agency = await session.get(Agency, officer.agency_code)
        if secret is not None or (agency is not None and agency.requires_totp):
            ok = secret is not None and bool(code) and pyotp.TOTP(secret).verify(code or "", for_time=now,
                                                                                  valid_window=1)
            reason = "second-factor"
    if not ok:
        officer.failed_attempts += 1
        if officer.failed_attempts >= settings.signin_lockout_after:
            officer.locked_until = now + timedelta(seconds=settings.signin_lockout)
            officer.failed_attempts = 0
        session.add(officer)
        await session.flush()
        audit.record(session, "officer.signin", outcome=Outcome.denied, reason=reason, **ident)
        return Refused(reason)
    officer.failed_attempts, officer.locked_until = 0, None
    session.add(officer)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(OfficerSession(id_hash=token_hash(token), officer_id=officer.id, csrf_token=csrf, created_at=now,
                               last_seen_at=now, expires_at=now + timedelta(seconds=settings.session_absolute)))
    await session.flush()
    audit.record(session, "officer.signin", **ident)
    return SignedIn(token, csrf, officer)


@dataclass(frozen=True, slots=True)
class Console:
    """A live console session: who, and the CSRF token its forms carry."""

    caller: Caller
    csrf: str
    officer_id: uuid.UUID
    name: str
    email: str
    agency_name: str


async def open_session(session: AsyncSession, settings: Settings, token: str | None) -> Console | None:
    """The live session of the cookie ``token`` (its last use noted), else ``None`` (an
    expired one is deleted)."""
    if not token or len(token) > 200:
        return None
    row = await session.get(OfficerSession, token_hash(token))
    if row is None:
        return None
    now = clock.now()
    if row.expires_at <= now or row.last_seen_at + timedelta(seconds=settings.session_idle) <= now:
        await session.delete(row)
        await session.flush()
        return None
    found = (await session.execute(
        sa.select(Officer, Agency).join(Agency, col(Agency.code) == col(Officer.agency_code))
        .where(col(Officer.id) == row.officer_id))).first()
    if found is None or found[0].disabled_at is not None:
        return None
    officer, agency = found
    if (now - row.last_seen_at).total_seconds() >= 15:  # not on every request: the idle clock is coarse
        row.last_seen_at = now
        session.add(row)
        await session.flush()
    # what the agency may still do bounds what the officer may (a disabled client's scopes go)
    scopes = frozenset(officer.scopes.split()) & frozenset(await agency_scopes(session, agency.code))
    caller = Caller(client_id=officer_client_id(officer.id), agency=agency.code, agency_kind=AgencyKind(agency.kind),
                    jurisdiction=agency.jurisdiction, scopes=scopes, token_id="console", officer=str(officer.id))
    return Console(caller, row.csrf_token, officer.id, officer.name, officer.email, agency.name)


def csrf_matches(console: Console, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(console.csrf.encode(), (given or "").encode())


async def sign_out(session: AsyncSession, token: str | None) -> None:
    if not token:
        return
    row = await session.get(OfficerSession, token_hash(token))
    if row is not None:
        await session.delete(row)
        await session.flush()
        audit.record(session, "officer.signout", resource_type="officer", resource_id=str(row.officer_id))
