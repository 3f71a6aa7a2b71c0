"""The only module that touches python-jose: issuing and verifying RFC 9068 access tokens.

python-jose's defaults are unsafe (no algorithm allowlist, ``aud`` skipped when absent, ``typ``
unchecked). Here every check of the JWT BCP (RFC 8725) is pinned:

* the algorithm allowlist is ``RS256`` only (``none`` and HMAC are refused before any key is
  touched, so the public key can never be used as an HMAC secret);
* the header must say ``typ: at+jwt`` and name a ``kid`` of the service's own key set; ``jku``,
  ``x5u``, ``jwk`` and ``x5c`` headers are refused, keys never come from the token;
* ``iss``, ``aud``, ``sub``, ``client_id``, ``exp``, ``iat``, ``jti`` are required and checked,
  ``nbf`` when present; clock skew tolerated is :data:`LEEWAY` seconds.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jose import jws, jwt
from jose.backends.base import Key
from jose.exceptions import JOSEError

from api.core import text as text_rules

ALGORITHM = "RS256"
TOKEN_TYPE = "at+jwt"
LEEWAY = 10
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
_REQUIRED = ("iss", "aud", "sub", "client_id", "exp", "iat", "jti", "scope")


class InvalidToken(Exception):
    """The token is not one this service issued, or no longer valid. The message is safe to
    show to the caller."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    client_id: str
    agency: str
    jurisdiction: str | None
    scopes: frozenset[str]
    jti: str
    issued_at: int
    expires_at: int


def issue(
    *,
    signer: Key,
    kid: str,
    issuer: str,
    audience: str,
    client_id: str,
    agency: str,
    jurisdiction: str | None,
    scopes: list[str],
    now: datetime,
    ttl: int,
) -> tuple[str, TokenClaims]:
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "client_id": client_id,
        "agency": agency,
        "jurisdiction": jurisdiction,
        "scope": " ".join(sorted(scopes)),
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, signer, algorithm=ALGORITHM, headers={"kid": kid, "typ": TOKEN_TYPE})
    return token, _claims(claims)


def peek_kid(token: str) -> str:
    """The ``kid`` of a token whose header is otherwise acceptable (no key is used yet)."""
    try:
        header = jwt.get_unverified_header(token)
    except JOSEError:
        raise InvalidToken("The token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("The token's algorithm is not accepted")
    typ = str(header.get("typ", "")).lower()
    if typ not in (TOKEN_TYPE, "application/" + TOKEN_TYPE):
        raise InvalidToken("The token is not an access token (typ)")
    if _FORBIDDEN_HEADERS & header.keys():
        raise InvalidToken("The token carries a key reference this service does not accept")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("The token names no key (kid)")
    if not text_rules.is_identifier(kid, 64):  # never a key of ours: not looked up (NUL breaks PostgreSQL)
        raise InvalidToken("The token was signed by a key this service does not know")
    return kid


# Tokens whose signature and claims have verified, by (token, issuer, audience): the key they
# verified with, their claims. A partner sends the same token with every call for its lifetime,
# and the RSA check with python-jose's parsing cost ≈ 60 µs of CPU a call (2 µs from here). A token is taken from
# here only for the very key object it verified with (a key rotated out or reloaded: verified
# again); its times are checked at every call, revocation and the client's state by the request's
# caller lookup, as before. Bounded: the oldest go first.
_VERIFIED: OrderedDict[tuple[str, str, str], tuple[Key, dict[str, Any], TokenClaims]] = OrderedDict()
VERIFIED_MAX = 4096


def verify(token: str, key: Key, *, issuer: str, audience: str, now: datetime, max_lifetime: int) -> TokenClaims:
    """Verify a token against ``key``, the service key its ``kid`` named (see :func:`peek_kid`).

    The times are checked here against ``now`` (the service's clock), not by python-jose against
    the system's: a token issued in the future, or living longer than ``max_lifetime`` seconds
    (the configured token lifetime), is refused as well as an expired one. The signature of a
    token seen before with the same key is not checked again (:data:`_VERIFIED`)."""
    memo = (token, issuer, audience)
    seen = _VERIFIED.get(memo)
    if seen is not None and seen[0] is key:
        _VERIFIED.move_to_end(memo)
        _check_times(seen[1], int(now.timestamp()), max_lifetime)
        return seen[2]
    claims = _decoded(token, key, issuer=issuer, audience=audience)
    _check_times(claims, int(now.timestamp()), max_lifetime)
    out = _claims(claims)
    _VERIFIED[memo] = (key, claims, out)
    while len(_VERIFIED) > VERIFIED_MAX:
        _VERIFIED.popitem(last=False)
    return out


def _decoded(token: str, key: Key, *, issuer: str, audience: str) -> dict[str, Any]:
    """The token's claims once its signature, issuer, audience and required claims check."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={
                "verify_signature": True,
                "verify_aud": True,
                "verify_iat": False,  # the three times: below, against ``now``
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iss": True,
                "verify_sub": True,
                "verify_jti": True,
                "require_aud": True,
                # python-jose turns require_X into verify_X: iat and exp are required by
                # _REQUIRED below instead, and their times checked by _check_times
                "require_iss": True,
                "require_sub": True,
                "require_jti": True,
                "leeway": LEEWAY,
            },
        )
    except JOSEError as exc:
        raise InvalidToken(_reason(exc)) from None
    missing = [c for c in _REQUIRED if c not in claims]
    if missing:
        raise InvalidToken(f"The token lacks required claims: {', '.join(missing)}")
    if claims["client_id"] != claims["sub"] or not isinstance(claims["scope"], str):
        raise InvalidToken("The token's claims are inconsistent")
    return claims


def _check_times(claims: dict[str, Any], now: int, max_lifetime: int) -> None:
    times = {name: claims.get(name) for name in ("iat", "exp", "nbf")}
    for name, value in times.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidToken(f"The token's {name} is not a NumericDate")
    iat, exp, nbf = times["iat"], times["exp"], times["nbf"]
    assert isinstance(iat, int) and isinstance(exp, int)  # required above
    if now > exp + LEEWAY:
        raise InvalidToken("The token has expired")
    if nbf is not None and now < nbf - LEEWAY:
        raise InvalidToken("The token is not yet valid")
    if iat > now + LEEWAY:
        raise InvalidToken("The token was issued in the future (iat)")
    if exp - iat > max_lifetime:
        raise InvalidToken("The token lives longer than this service issues tokens for")


def _claims(c: dict[str, Any]) -> TokenClaims:
    return TokenClaims(
        client_id=c["client_id"],
        agency=c.get("agency", ""),
        jurisdiction=c.get("jurisdiction"),
        scopes=frozenset(c["scope"].split()),
        jti=c["jti"],
        issued_at=int(c["iat"]),
        expires_at=int(c["exp"]),
    )


def _reason(exc: JOSEError) -> str:
    text = str(exc).lower()
    if "expired" in text:
        return "The token has expired"
    if "not yet valid" in text or "nbf" in text:
        return "The token is not yet valid"
    if "audience" in text:
        return "The token is not meant for this service (aud)"
    if "issuer" in text:
        return "The token was not issued by this service (iss)"
    if "signature" in text:
        return "The token's signature does not verify"
    return "The token is not valid"


# --- audit checkpoints ---------------------------------------------------------------------
#
# A checkpoint is the head of an audit chain (chain, seq, hash) signed with the service's key.
# An auditor keeps it outside the database; later, the chain must still hold that hash at that
# position, which a rewrite of the whole database (recomputing every hash) cannot fake without
# the signing key, which is itself encrypted with the data key that the database does not hold.

CHECKPOINT_TYPE = "sinergi-audit-checkpoint+jwt"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    chain: str
    seq: int
    hash: str
    issued_at: int


def sign_checkpoint(*, signer: Key, kid: str, issuer: str, chain: str, seq: int, hash: str, now: datetime) -> str:
    claims = {"iss": issuer, "iat": int(now.timestamp()), "chain": chain, "seq": seq, "hash": hash}
    return jwt.encode(claims, signer, algorithm=ALGORITHM, headers={"kid": kid, "typ": CHECKPOINT_TYPE})


def checkpoint_kid(token: str) -> str:
    try:
        header = jwt.get_unverified_header(token)
    except JOSEError:
        raise InvalidToken("The checkpoint is malformed") from None
    if header.get("alg") != ALGORITHM or header.get("typ") != CHECKPOINT_TYPE:
        raise InvalidToken("This is not an audit checkpoint of this service")
    if _FORBIDDEN_HEADERS & header.keys() or not text_rules.is_identifier(header.get("kid"), 64):
        raise InvalidToken("The checkpoint names no key of this service")
    return header["kid"]


def verify_checkpoint(token: str, key: Key, *, issuer: str) -> Checkpoint:
    try:
        payload = json.loads(jws.verify(token, key, algorithms=[ALGORITHM]))
    except (JOSEError, ValueError):
        raise InvalidToken("The checkpoint's signature does not verify") from None
    try:
        if payload["iss"] != issuer:
            raise InvalidToken("The checkpoint was not issued by this service")
        return Checkpoint(str(payload["chain"]), int(payload["seq"]), str(payload["hash"]), int(payload["iat"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidToken("The checkpoint lacks chain, seq, hash or iat") from None
