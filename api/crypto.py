"""Encryption of personal data and secrets at rest, and the keyed blind index.

AES-256-GCM (``cryptography``) with the data key; each value gets a fresh 96-bit nonce and is
stored as ``v1.<urlsafe base64 of nonce || ciphertext>``, so a later key version can be told
apart. The blind index is HMAC-SHA256 with a separate key over a normalised value: equal
values match without the database ever holding the value itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.settings import get_settings

_PREFIX = "v1."


@lru_cache(maxsize=4)
def _aead(key: bytes) -> AESGCM:
    return AESGCM(key)


def encrypt(plaintext: str, *, context: str, key: bytes | None = None) -> str:
    """Encrypt; ``context`` (e.g. ``"returnee.nik"``) is bound as associated data, so a value
    copied into another column no longer decrypts."""
    key = key or get_settings().data_key_bytes
    nonce = os.urandom(12)
    ct = _aead(key).encrypt(nonce, plaintext.encode("utf-8"), context.encode())
    return _PREFIX + base64.urlsafe_b64encode(nonce + ct).decode()


def decrypt(token: str, *, context: str, key: bytes | None = None) -> str:
    key = key or get_settings().data_key_bytes
    if not token.startswith(_PREFIX):
        raise ValueError("unknown ciphertext version")
    raw = base64.urlsafe_b64decode(token[len(_PREFIX) :])
    return _aead(key).decrypt(raw[:12], raw[12:], context.encode()).decode("utf-8")


def normalise_identifier(value: str) -> str:
    return re.sub(r"[\s.\-/]", "", value).upper()


def blind_index(value: str, *, context: str, key: bytes | None = None) -> str:
    key = key or get_settings().index_key_bytes
    msg = context.encode() + b"\x00" + normalise_identifier(value).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def mask(value: str | None, keep: int = 4) -> str | None:
    """``6107015505900001`` -> ``************0001``."""
    if value is None:
        return None
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]


def hash_secret(secret: str) -> str:
    """Client secrets are 256-bit random strings, so a fast hash is enough (no password
    stretching needed) and keeps the token endpoint cheap."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
