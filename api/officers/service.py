"""Officer accounts, sign-in and console sessions (the API, the command line and the console share this).

Passwords are argon2id (``argon2-cffi``); the second factor is TOTP (RFC 6238, ``pyotp``), its
secret encrypted with the data key. A session is a random token in an ``HttpOnly`` cookie; only
its SHA-256 is stored, with the synchronizer CSRF token every form carries, and it ends when it
has been idle for ``session_idle`` seconds or lived ``session_absolute``. ``signin_lockout_after``
failed sign-ins in a row lock the officer for ``signin_lockout`` seconds.

A sign-in whose password was right may still have a step to go (:class:`Pending`): a password
someone else set (a reset) is replaced by one of the officer's own, and an officer of an agency
that requires a second factor but who has none enrols one, confirmed by a code. Until then the
browser holds a half-done session that opens no page; only the last step makes a session.

Managing officers (:func:`list_officers`, :func:`read_officer`, :func:`update_officer`,
:func:`reset_password`, :func:`reset_totp`) is for the operator (``admin``, or the command line,
``by=None``) and the agency's own ``officers:manage``; another agency's officer is a 404. Every
read and change is audited with the officer's id as the resource.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import argon2
import pyotp
import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, clock, crypto, pagination
from api.core.context import Caller
from api.core.errors import Conflict, Forbidden, NotFound, Problem, ValidationFailed
from api.core.pagination import Position, Slice
from api.core.scopes import Scope
from api.core.settings import Settings
from api.core.unit import unit_of
from api.officers.schemas import (
    OfficerCreate,
    OfficerCreated,
    OfficerPublic,
    OfficerUpdate,
    PasswordChange,
    PasswordReset,
    TotpIssued,
    TotpReset,
)
from models import Agency, AgencyKind, ApiClient, Officer, OfficerSession, Outcome

_HASHER = argon2.PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) parameters
_TOTP_CONTEXT = "officer.totp"
_ISSUER = "Sinergi"
# A hash to verify against when the e-mail is unknown: the reply takes as long as for a known one.
_DUMMY_HASH = _HASHER.hash("no such officer " + secrets.token_hex(8))
PENDING_TTL = 600  # seconds a half-done sign-in (a new password, a second factor to enrol) stays open
PASSWORD_STAGE, TOTP_STAGE = "password", "totp"


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


def totp_uri(secret: str, email: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (from a QR code, or typed)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=_ISSUER)


def _code_step(secret: str, code: str | None, now: datetime, after: int | None) -> int | None:
    """The time step (RFC 6238) of which ``code`` is the code of ``secret``: now, the one before
    or the one after (a clock a little off), and later than ``after`` (the step of the last
    code the officer used with this secret: a code is accepted once, RFC 6238 5.2); else None."""
    code = (code or "").strip()[:12]
    if not code:
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(now)
    for step in (now_step - 1, now_step, now_step + 1):
        if (after is None or step > after) and pyotp.utils.strings_equal(code, totp.generate_otp(step)):
            return step
    return None


def _code_ok(officer: Officer, secret: str, code: str | None, now: datetime, *, new_secret: bool = False) -> bool:
    """``code`` opens ``officer``'s second factor (``new_secret``: confirms a secret being
    enrolled, which no code has been used with yet); its step is recorded on the officer."""
    step = _code_step(secret, code, now, None if new_secret else officer.totp_last_step)
    if step is None:
        return False
    officer.totp_last_step = step
    return True


def _encrypt_totp(secret: str, settings: Settings) -> str:
    return crypto.encrypt(secret, context=_TOTP_CONTEXT, key=settings.data_key_bytes)


def _decrypt_totp(stored: str, settings: Settings) -> str:
    return crypto.decrypt(stored, context=_TOTP_CONTEXT, key=settings.data_key_bytes)


def totp_secret(officer: Officer, settings: Settings) -> str | None:
    if officer.totp_secret_enc is None:
        return None
    return _decrypt_totp(officer.totp_secret_enc, settings)


async def agency_scopes(session: AsyncSession, agency_code: str) -> set[str]:
    """What the agency may do: the scopes of its enabled API clients."""
    rows = await session.exec(select(ApiClient.scopes).where(col(ApiClient.agency_code) == agency_code,
                                                             col(ApiClient.disabled_at).is_(None)))
    return {s for line in rows for s in line.split()}


class OutsideAgencyScopes(ValidationFailed):
    slug, title = "scopes-not-held", "The officer would hold scopes the agency does not"


class OfficerExists(Conflict):
    slug, title = "officer-exists", "An officer with this e-mail address exists"


class OwnAccount(Conflict):
    slug, title = "own-account", "An officer cannot disable their own account"


class BeyondOwnScopes(Problem):
    status, slug, title = 403, "scopes-not-yours", "A manager grants only scopes they hold"

    def __init__(self, beyond: list[str]) -> None:
        super().__init__(f"You do not hold {' '.join(beyond)}, so you cannot grant it; ask the operator",
                         errors=[{"field": "scopes", "message": f"not held by you: {' '.join(beyond)}"}])


async def _checked_scopes(session: AsyncSession, agency_code: str, scopes: list[str],
                          by: Caller | None) -> list[str]:
    """``scopes`` (each once, in the order given) if the agency holds them all (else a 422) and
    ``by`` does too (else a 403): an agency's manager grants nothing they do not hold
    themselves, to another officer or to their own account (a manager who could grant
    ``pii:read`` could reset that officer's password and read as them). The operator
    (``admin``) and the command line grant any of the agency's."""
    unknown = [s for s in scopes if s not in {str(x) for x in Scope}]
    if unknown:
        raise ValidationFailed(f"Unknown scopes: {' '.join(unknown)}",
                               errors=[{"field": "scopes", "message": f"unknown scopes: {' '.join(unknown)}"}])
    missing = sorted(set(scopes) - await agency_scopes(session, agency_code))
    if missing:
        raise OutsideAgencyScopes(f"Agency {agency_code} does not hold {' '.join(missing)}",
                                  errors=[{"field": "scopes", "message": f"not held by the agency: {' '.join(missing)}"}])
    if Scope.admin in scopes:
        raise Forbidden("admin")
    if by is not None and not by.has(Scope.admin):
        beyond = sorted(set(scopes) - by.scopes)
        if beyond:
            raise BeyondOwnScopes(beyond)
    return list(dict.fromkeys(scopes))


async def _agency_of(session: AsyncSession, agency_code: str, by: Caller | None) -> Agency:
    """The agency whose officers ``by`` manages: the operator any, an agency's manager its own
    (another agency's is as if it did not exist)."""
    if by is not None and not by.has(Scope.admin) and by.agency != agency_code:
        raise NotFound(f"No agency {agency_code}")
    agency = await session.get(Agency, agency_code)
    if agency is None:
        raise NotFound(f"No agency {agency_code}")
    return agency


async def _find(session: AsyncSession, agency_code: str, officer_id: uuid.UUID,
                by: Caller | None) -> tuple[Officer, Agency]:
    agency = await _agency_of(session, agency_code, by)
    officer = await session.get(Officer, officer_id)
    if officer is None or officer.agency_code != agency.code:
        raise NotFound("No such officer")
    return officer, agency


async def officer_by_email(session: AsyncSession, email: str) -> Officer:
    """The command line names officers by their e-mail address."""
    officer = (await session.exec(select(Officer).where(col(Officer.email) == email.strip().lower()))).first()
    if officer is None:
        raise NotFound("No officer with this e-mail address")
    return officer


def public(officer: Officer, agency: Agency) -> OfficerPublic:
    now = clock.now()
    return OfficerPublic(
        id=officer.id, agency=officer.agency_code, email=officer.email, name=officer.name,
        scopes=officer.scopes.split(), second_factor=officer.totp_secret_enc is not None,
        second_factor_required=agency.requires_totp, password_must_change=officer.password_must_change,
        disabled=officer.disabled_at is not None, disabled_at=officer.disabled_at,
        locked_until=officer.locked_until if officer.locked_until is not None and officer.locked_until > now else None,
        last_signin_at=officer.last_signin_at, created_at=officer.created_at)


def _ident(officer: Officer) -> dict[str, Any]:
    """An entry about the officer: found by their id (``GET /v1/audit?resource_id=``)."""
    return {"resource_type": "officer", "resource_id": str(officer.id), "subjects": [("officer", str(officer.id))],
            "agency_code": officer.agency_code}


async def _end_sessions(session: AsyncSession, officer_id: uuid.UUID, keep: str | None = None) -> None:
    """Every session of the officer ends now (half-done sign-ins too), but ``keep`` (a session's
    ``id_hash``: the one that made the change)."""
    stmt = sa.delete(OfficerSession).where(col(OfficerSession.officer_id) == officer_id)
    if keep is not None:
        stmt = stmt.where(col(OfficerSession.id_hash) != keep)
    await session.execute(stmt)


# --- managing officers -------------------------------------------------------------------------


async def create_officer(session: AsyncSession, agency_code: str, data: OfficerCreate,
                         by: Caller | None = None) -> OfficerCreated:
    """An officer of ``agency_code``. ``by``: the API caller, the operator (``admin``) or the
    agency's own administrator (``officers:manage``); ``None`` is the command line."""
    agency = await _agency_of(session, agency_code, by)
    scopes = await _checked_scopes(session, agency_code, data.scopes, by)
    email = data.email.strip().lower()
    if (await session.exec(select(Officer.id).where(col(Officer.email) == email))).first() is not None:
        raise OfficerExists("An officer with this e-mail address exists")
    password = data.password or secrets.token_urlsafe(15)
    uri = None
    officer = Officer(agency_code=agency_code, email=email, name=data.name, scopes=" ".join(scopes),
                      password_hash=hash_password(password), password_must_change=data.password is None)
    if agency.requires_totp:
        secret = pyotp.random_base32()
        officer.totp_secret_enc = _encrypt_totp(secret, unit_of(session).settings)
        uri = totp_uri(secret, email)
    session.add(officer)
    await session.flush()
    audit.record(session, "officer.create", scopes=scopes, second_factor=agency.requires_totp, **_ident(officer))
    return OfficerCreated(id=officer.id, agency=agency_code, email=email, scopes=scopes,
                          password=None if data.password else password, totp_uri=uri)


async def list_officers(session: AsyncSession, agency_code: str, *, by: Caller | None, after: Position | None,
                        limit: int) -> Slice[OfficerPublic]:
    """The agency's officers by e-mail address, after the position ``after`` (``(email,)``)."""
    agency = await _agency_of(session, agency_code, by)
    page = await pagination.read_page(session, select(Officer).where(col(Officer.agency_code) == agency.code),
                                      [col(Officer.email)], after, limit)
    audit.record(session, "officer.list", resource_type="agency", resource_id=agency.code,
                 subjects=[("officer", str(o.id)) for o in page.items], count=len(page.items))
    return Slice([public(o, agency) for o in page.items], page.next)


async def all_officers(session: AsyncSession, agency_code: str, by: Caller | None = None) -> list[OfficerPublic]:
    """The whole list (the command line, the console's page), read page by page as the API reads it."""
    found: list[OfficerPublic] = []
    after: Position | None = None
    while True:
        page = await list_officers(session, agency_code, by=by, after=after, limit=pagination.MAX_LIMIT)
        found += page.items
        if page.next is None:
            return found
        after = page.next


async def read_officer(session: AsyncSession, agency_code: str, officer_id: uuid.UUID,
                       by: Caller | None = None) -> OfficerPublic:
    officer, agency = await _find(session, agency_code, officer_id, by)
    audit.record(session, "officer.read", **_ident(officer))
    return public(officer, agency)


async def update_officer(session: AsyncSession, agency_code: str, officer_id: uuid.UUID, data: OfficerUpdate,
                         by: Caller | None = None) -> OfficerPublic:
    """Change an officer's scopes (still a subset of the agency's), name, or whether the account
    is disabled; disabling ends every session of theirs at once."""
    officer, agency = await _find(session, agency_code, officer_id, by)
    changed: dict[str, Any] = {}
    if data.disabled and by is not None and by.officer == str(officer.id):
        raise OwnAccount("An officer cannot disable their own account; ask another manager or the operator")
    if data.scopes is not None:
        scopes = await _checked_scopes(session, agency.code, data.scopes, by)
        officer.scopes = " ".join(scopes)
        changed["scopes"] = scopes
    if data.name is not None and data.name != officer.name:
        officer.name = data.name
        changed["name"] = True
    if data.disabled is not None and data.disabled != (officer.disabled_at is not None):
        officer.disabled_at = clock.now() if data.disabled else None
        changed["disabled"] = data.disabled
    session.add(officer)
    if officer.disabled_at is not None:
        await _end_sessions(session, officer.id)
    await session.flush()
    action = "officer.update"
    if set(changed) == {"disabled"}:
        action = "officer.disable" if data.disabled else "officer.enable"
    audit.record(session, action, changes=changed, **_ident(officer))
    return public(officer, agency)


async def reset_password(session: AsyncSession, agency_code: str, officer_id: uuid.UUID,
                         by: Caller | None = None) -> PasswordReset:
    """A new one-time password (in the reply only): the old one stops working, a lock-out is
    lifted, every session ends, and the officer chooses their own at the next sign-in."""
    officer, _agency = await _find(session, agency_code, officer_id, by)
    password = secrets.token_urlsafe(15)
    officer.password_hash = hash_password(password)
    officer.password_must_change = True
    officer.failed_attempts, officer.locked_until = 0, None
    session.add(officer)
    await _end_sessions(session, officer.id)
    await session.flush()
    audit.record(session, "officer.password_reset", **_ident(officer))
    return PasswordReset(id=officer.id, email=officer.email, password=password)


async def reset_totp(session: AsyncSession, agency_code: str, officer_id: uuid.UUID, data: TotpReset,
                     by: Caller | None = None) -> TotpIssued:
    """A new TOTP secret (stored encrypted, its URI in the reply only), or none at all
    (``enrol_at_sign_in``: the officer enrols their own at the next sign-in); either way every
    session ends."""
    officer, _agency = await _find(session, agency_code, officer_id, by)
    uri = None
    officer.totp_last_step = None  # the old secret's last code says nothing about the new one's
    if data.enrol_at_sign_in:
        officer.totp_secret_enc = None
    else:
        secret = pyotp.random_base32()
        officer.totp_secret_enc = _encrypt_totp(secret, unit_of(session).settings)
        uri = totp_uri(secret, officer.email)
    session.add(officer)
    await _end_sessions(session, officer.id)
    await session.flush()
    audit.record(session, "officer.totp_reset", enrol_at_sign_in=data.enrol_at_sign_in, **_ident(officer))
    return TotpIssued(id=officer.id, email=officer.email, totp_uri=uri)


# --- signing in ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str  # the cookie's value
    csrf: str
    officer: Officer


@dataclass(frozen=True, slots=True)
class Pending:
    """The password was right; ``stage`` is what is still to do (:data:`PASSWORD_STAGE`,
    :data:`TOTP_STAGE`) before a session is made. ``token`` is the half-done sign-in's cookie."""

    token: str
    stage: str


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str  # "credentials", "second-factor", "locked", "password-reused", "expired"


def _locked(officer: Officer, now: datetime) -> bool:
    return officer.locked_until is not None and officer.locked_until > now


async def _failed(session: AsyncSession, settings: Settings, officer: Officer, now: datetime) -> None:
    """One more failure in a row; past ``signin_lockout_after`` the officer is locked, and a
    half-done sign-in of theirs ends."""
    officer.failed_attempts += 1
    if officer.failed_attempts >= settings.signin_lockout_after:
        officer.locked_until = now + timedelta(seconds=settings.signin_lockout)
        officer.failed_attempts = 0
        await session.execute(sa.delete(OfficerSession).where(col(OfficerSession.officer_id) == officer.id,
                                                              col(OfficerSession.stage).is_not(None)))
    session.add(officer)
    await session.flush()


async def _next_stage(session: AsyncSession, officer: Officer) -> str | None:
    if officer.password_must_change:
        return PASSWORD_STAGE
    if officer.totp_secret_enc is None:
        agency = await session.get(Agency, officer.agency_code)
        if agency is not None and agency.requires_totp:
            return TOTP_STAGE
    return None


async def _continue(session: AsyncSession, settings: Settings, officer: Officer, now: datetime) -> SignedIn | Pending:
    """The next step of a sign-in whose checks so far passed: a half-done one, or the session."""
    stage = await _next_stage(session, officer)
    if stage is None:
        return await _session_for(session, settings, officer, now)
    token = secrets.token_urlsafe(32)
    candidate = _encrypt_totp(pyotp.random_base32(), settings) if stage == TOTP_STAGE else None
    session.add(OfficerSession(id_hash=token_hash(token), officer_id=officer.id, csrf_token=secrets.token_urlsafe(32),
                               created_at=now, last_seen_at=now, expires_at=now + timedelta(seconds=PENDING_TTL),
                               stage=stage, totp_candidate_enc=candidate))
    await session.flush()
    audit.record(session, "officer.signin", next_step=stage, **_ident(officer))
    return Pending(token, stage)


async def _session_for(session: AsyncSession, settings: Settings, officer: Officer, now: datetime) -> SignedIn:
    officer.failed_attempts, officer.locked_until = 0, None
    officer.last_signin_at = now
    session.add(officer)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(OfficerSession(id_hash=token_hash(token), officer_id=officer.id, csrf_token=csrf, created_at=now,
                               last_seen_at=now, expires_at=now + timedelta(seconds=settings.session_absolute)))
    await session.flush()
    audit.record(session, "officer.signin", **_ident(officer))
    return SignedIn(token, csrf, officer)


async def sign_in(session: AsyncSession, settings: Settings, email: str, password: str,
                  code: str | None) -> SignedIn | Pending | Refused:
    """Check the credentials; a refusal is returned, not raised, so that the failed attempt it
    counts is committed with its audit entry."""
    email = (email or "").strip().lower()[:254]
    officer = (await session.exec(select(Officer).where(col(Officer.email) == email))).first()
    now = clock.now()
    if officer is None or officer.disabled_at is not None:
        password_matches(_DUMMY_HASH, password)
        audit.record(session, "officer.signin", outcome=Outcome.denied, resource_type="officer", reason="credentials")
        return Refused("credentials")
    ident = _ident(officer)
    if _locked(officer, now):
        audit.record(session, "officer.signin", outcome=Outcome.denied, reason="locked", **ident)
        return Refused("locked")
    ok = password_matches(officer.password_hash, password)
    reason = "credentials"
    if ok:
        secret = totp_secret(officer, settings)
        if secret is not None:  # enrolled: the code is asked (an agency's requirement without one: enrolled next)
            ok = _code_ok(officer, secret, code, now)
            reason = "second-factor"
    if not ok:
        await _failed(session, settings, officer, now)
        audit.record(session, "officer.signin", outcome=Outcome.denied, reason=reason, **ident)
        return Refused(reason)
    return await _continue(session, settings, officer, now)


@dataclass(frozen=True, slots=True)
class HalfSignedIn:
    """A half-done sign-in: whose, what is still to do, the CSRF token of its form, and for a
    second factor to enrol, its secret (shown to the officer to enrol in an app)."""

    row: OfficerSession
    officer: Officer
    stage: str
    csrf: str
    secret: str | None

    @property
    def totp_uri(self) -> str | None:
        return totp_uri(self.secret, self.officer.email) if self.secret else None


async def open_pending(session: AsyncSession, settings: Settings, token: str | None) -> HalfSignedIn | None:
    """The live half-done sign-in of the cookie ``token``, else ``None`` (an expired one is deleted)."""
    if not token or len(token) > 200:
        return None
    row = await session.get(OfficerSession, token_hash(token))
    if row is None or row.stage is None:
        return None
    if row.expires_at <= clock.now():
        await session.delete(row)
        await session.flush()
        return None
    officer = await session.get(Officer, row.officer_id)
    if officer is None or officer.disabled_at is not None:
        return None
    secret = _decrypt_totp(row.totp_candidate_enc, settings) if row.totp_candidate_enc else None
    return HalfSignedIn(row, officer, row.stage, row.csrf_token, secret)


async def choose_password(session: AsyncSession, settings: Settings, pending: HalfSignedIn,
                          data: PasswordChange) -> SignedIn | Pending | Refused:
    """The step of a sign-in after a reset: the officer's own password replaces the one-time one."""
    officer, now = pending.officer, clock.now()
    if pending.stage != PASSWORD_STAGE or _locked(officer, now):
        return Refused("expired")
    if password_matches(officer.password_hash, data.new_password):
        audit.record(session, "officer.password_change", outcome=Outcome.denied, reason="password-reused",
                     **_ident(officer))
        return Refused("password-reused")
    officer.password_hash = hash_password(data.new_password)
    officer.password_must_change = False
    session.add(officer)
    await session.delete(pending.row)
    await session.flush()
    audit.record(session, "officer.password_change", **_ident(officer))
    return await _continue(session, settings, officer, now)


async def enrol_totp(session: AsyncSession, settings: Settings, pending: HalfSignedIn,
                     code: str | None) -> SignedIn | Pending | Refused:
    """The step of a sign-in for an officer without the second factor their agency requires: a
    code of the secret shown confirms it, and only then is a session made. A wrong code counts
    as a failed sign-in."""
    officer, now = pending.officer, clock.now()
    if pending.stage != TOTP_STAGE or pending.secret is None or _locked(officer, now):
        return Refused("expired")
    if not _code_ok(officer, pending.secret, code, now, new_secret=True):
        await _failed(session, settings, officer, now)
        audit.record(session, "officer.totp_enrol", outcome=Outcome.denied, reason="second-factor", **_ident(officer))
        return Refused("locked" if _locked(officer, now) else "second-factor")
    officer.totp_secret_enc = pending.row.totp_candidate_enc
    session.add(officer)
    await session.delete(pending.row)
    await session.flush()
    audit.record(session, "officer.totp_enrol", **_ident(officer))
    return await _continue(session, settings, officer, now)


# --- console sessions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Console:
    """A live console session: who, and the CSRF token its forms carry."""

    caller: Caller
    csrf: str
    officer_id: uuid.UUID
    name: str
    email: str
    agency_name: str
    session_id: str  # the session row's id (the hash of the cookie)
    second_factor: bool = False


async def open_session(session: AsyncSession, settings: Settings, token: str | None) -> Console | None:
    """The live session of the cookie ``token`` (its last use noted), else ``None`` (an
    expired one is deleted; a half-done sign-in is none)."""
    if not token or len(token) > 200:
        return None
    row = await session.get(OfficerSession, token_hash(token))
    if row is None or row.stage is not None:
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
    return Console(caller, row.csrf_token, officer.id, officer.name, officer.email, agency.name, row.id_hash,
                   officer.totp_secret_enc is not None)


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


async def sign_out(session: AsyncSession, token: str | None) -> None:
    if not token:
        return
    row = await session.get(OfficerSession, token_hash(token))
    if row is not None:
        await session.delete(row)
        await session.flush()
        audit.record(session, "officer.signout", resource_type="officer", resource_id=str(row.officer_id))


# --- an officer's own account ("Keamanan akun") ----------------------------------------------


async def _own(session: AsyncSession, console: Console) -> Officer:
    officer = await session.get(Officer, console.officer_id)
    if officer is None:  # pragma: no cover - a live session's officer exists
        raise NotFound("No such officer")
    return officer


async def _recheck_password(session: AsyncSession, settings: Settings, officer: Officer, password: str,
                            action: str) -> Refused | None:
    """The current password, asked again before a change of one's own credentials; a wrong one
    counts as a failed sign-in (and locks the officer as sign-in does)."""
    now = clock.now()
    if _locked(officer, now):
        audit.record(session, action, outcome=Outcome.denied, reason="locked", **_ident(officer))
        return Refused("locked")
    if not password_matches(officer.password_hash, password):
        await _failed(session, settings, officer, now)
        audit.record(session, action, outcome=Outcome.denied, reason="credentials", **_ident(officer))
        return Refused("credentials")
    return None


async def change_own_password(session: AsyncSession, settings: Settings, console: Console, old: str,
                              data: PasswordChange) -> Refused | None:
    """An officer's new password (the old one asked again); their other sessions end."""
    officer = await _own(session, console)
    refused = await _recheck_password(session, settings, officer, old, "officer.password_change")
    if refused is not None:
        return refused
    if password_matches(officer.password_hash, data.new_password):
        audit.record(session, "officer.password_change", outcome=Outcome.denied, reason="password-reused",
                     **_ident(officer))
        return Refused("password-reused")
    officer.password_hash = hash_password(data.new_password)
    officer.password_must_change, officer.failed_attempts = False, 0
    session.add(officer)
    await _end_sessions(session, officer.id, keep=console.session_id)
    await session.flush()
    audit.record(session, "officer.password_change", **_ident(officer))
    return None


async def start_own_totp(session: AsyncSession, settings: Settings, console: Console) -> None:
    """A new secret for the officer to enrol, kept on their session until a code confirms it
    (:func:`confirm_own_totp`); the one enrolled works until then."""
    row = await session.get(OfficerSession, console.session_id)
    if row is None:  # pragma: no cover - the session was just opened
        raise NotFound("No such session")
    row.totp_candidate_enc = _encrypt_totp(pyotp.random_base32(), settings)
    session.add(row)
    await session.flush()
    audit.record(session, "officer.totp_enrol", step="start", **_ident(await _own(session, console)))


async def own_totp_candidate(session: AsyncSession, settings: Settings, console: Console) -> str | None:
    """The secret being enrolled on this session (:func:`start_own_totp`), if any."""
    row = await session.get(OfficerSession, console.session_id)
    if row is None or row.totp_candidate_enc is None:
        return None
    return _decrypt_totp(row.totp_candidate_enc, settings)


async def confirm_own_totp(session: AsyncSession, settings: Settings, console: Console, password: str,
                           code: str | None) -> Refused | None:
    """The secret being enrolled becomes the officer's second factor, confirmed by their current
    password and a code of it; their other sessions end."""
    officer = await _own(session, console)
    row = await session.get(OfficerSession, console.session_id)
    if row is None or row.totp_candidate_enc is None:
        return Refused("expired")
    refused = await _recheck_password(session, settings, officer, password, "officer.totp_enrol")
    if refused is not None:
        return refused
    if not _code_ok(officer, _decrypt_totp(row.totp_candidate_enc, settings), code, clock.now(), new_secret=True):
        await _failed(session, settings, officer, clock.now())
        audit.record(session, "officer.totp_enrol", outcome=Outcome.denied, reason="second-factor", **_ident(officer))
        return Refused("second-factor")
    officer.totp_secret_enc, row.totp_candidate_enc = row.totp_candidate_enc, None
    officer.failed_attempts = 0  # the password and a code both proven
    session.add(officer)
    session.add(row)
    await _end_sessions(session, officer.id, keep=console.session_id)
    await session.flush()
    audit.record(session, "officer.totp_enrol", **_ident(officer))
    return None
