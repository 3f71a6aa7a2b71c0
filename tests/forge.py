"""Making tokens by hand, the way an attacker (or a confused partner) would: signed with the
service's real private key so that only the property under test is wrong."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from jose import jwt

from api.core import keys
from api.core.db import Database
from models import SigningKey


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def active_key(db: Database) -> tuple[str, str]:
    """The service's current signing key: ``(kid, private PEM)``, read from its database."""
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.select(SigningKey.kid, SigningKey.private_key_enc, SigningKey.public_jwk)
                .where(SigningKey.retired_at.is_(None))
            )
        ).one()
    private = keys.open_key(row[0], row[1], row[2], db.settings.data_key_bytes)[0]
    return row[0], private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()


def claims_for(party: Any, settings: Any, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": party.client_id,
        "client_id": party.client_id,
        "agency": party.agency,
        "jurisdiction": party.jurisdiction,
        "scope": " ".join(party.scopes),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    for k, v in changes.items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    return claims


def sign_rs256(claims: dict[str, Any], pem: str, kid: str | None, typ: str | None = "at+jwt") -> str:
    headers: dict[str, Any] = {}
    if kid is not None:
        headers["kid"] = kid
    if typ is not None:
        headers["typ"] = typ
    token = jwt.encode(claims, pem, algorithm="RS256", headers=headers)
    if typ is None:  # python-jose always writes typ "JWT"; take it out again (and re-sign)
        header = {"alg": "RS256", **({"kid": kid} if kid else {})}
        return _resign_rs256(header, claims, pem)
    return token


def _resign_rs256(header: dict[str, Any], claims: dict[str, Any], pem: str) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    signing_input = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
    return signing_input + "." + b64u(sig)


def sign_hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    return signing_input + "." + b64u(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode()) + "."


def payload(token: str) -> dict[str, Any]:
    return json.loads(b64u_decode(token.split(".")[1]))


def header(token: str) -> dict[str, Any]:
    return json.loads(b64u_decode(token.split(".")[0]))


def with_payload(token: str, claims: dict[str, Any]) -> str:
    """The same header and signature over a different payload (a tampered token)."""
    h, _p, s = token.split(".")
    return h + "." + b64u(json.dumps(claims).encode()) + "." + s


def jwk_to_pem(jwk_dict: dict[str, Any]) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    n = int.from_bytes(b64u_decode(jwk_dict["n"]), "big")
    e = int.from_bytes(b64u_decode(jwk_dict["e"]), "big")
    return RSAPublicNumbers(e, n).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
