"""Encryption of personal data and secrets at rest, and the keyed blind index.

AES-256-GCM (``cryptography``) with the data key; each value gets a fresh 96-bit nonce and is
stored as ``v1.<urlsafe base64 of nonce || ciphertext>``, so a later key version can be told
apart. The blind index is HMAC-SHA256 with a separate key over a normalised value: equal
values match without the database ever holding the value itself.

What a reply shows of an identifier (NIK, passport, phone)
----------------------------------------------------------
All of it to a caller holding ``pii:read``; to anyone else nothing but the fact that one is on
file (:func:`disclose`: the value ``null`` beside ``*_on_file: true``). No partial mask: the
last four digits of an NIK are its serial, and its first twelve are the sub-district, birth
date and sex the same reply shows, so a masked NIK was the whole NIK; the visible end of a
passport or phone number is likewise the part that tells it apart. Whether two records are the
same person is answered by their ``person_id`` (one per NIK), which says nothing of the number.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "v1."
_URLSAFE = bytes.maketrans(b"+/", b"-_")  # what base64.urlsafe_b64encode does, without its two calls


@lru_cache(maxsize=4)
def _aead(key: bytes) -> AESGCM:
    return AESGCM(key)


@lru_cache(maxsize=4)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 already keyed with ``key``: ``.copy()`` of it skips the key schedule."""
    return hmac.new(key, digestmod=hashlib.sha256)


def unwrap_hmac(mac: hmac.HMAC) -> Any:
    """The OpenSSL HMAC inside ``mac`` when there is one: its ``copy``, ``update`` and
    ``hexdigest`` are C calls, not ``hmac.HMAC``'s Python wrappers around them (same digest)."""
    return getattr(mac, "_hmac", None) or mac


def encrypt(plaintext: str, *, context: str, key: bytes) -> str:
    """Encrypt; ``context`` (e.g. ``"returnee.nik"``) is bound as associated data, so a value
    copied into another column no longer decrypts."""
    nonce = os.urandom(12)
    ct = _aead(key).encrypt(nonce, plaintext.encode("utf-8"), context.encode())
    return _PREFIX + base64.urlsafe_b64encode(nonce + ct).decode("ascii")


def decrypt(token: str, *, context: str, key: bytes) -> str:
    if not token.startswith(_PREFIX):
        raise ValueError("unknown ciphertext version")
    raw = base64.urlsafe_b64decode(token[len(_PREFIX) :])
    return _aead(key).decrypt(raw[:12], raw[12:], context.encode()).decode("utf-8")


_IDENTIFIER_NOISE = re.compile(r"[\s.\-/]")


def normalise_identifier(value: str) -> str:
    return _IDENTIFIER_NOISE.sub("", value).upper()


def blind_index(value: str, *, context: str, key: bytes) -> str:
    mac = _keyed(key).copy()
    mac.update(context.encode() + b"\x00" + normalise_identifier(value).encode())
    return mac.hexdigest()


class FieldCipher:
    """:func:`encrypt` and :func:`blind_index` of one kind of value (one encryption context,
    one index context) for many values: the AES key schedule and the keyed HMAC are set up
    once, not per value. Produces exactly what the two functions produce."""

    __slots__ = ("_aead", "_aad", "_mac", "_prefix")

    def __init__(self, *, data_key: bytes, index_key: bytes, context: str, index_context: str) -> None:
        self._aead = _aead(data_key)
        self._aad = context.encode()
        self._mac = unwrap_hmac(_keyed(index_key))
        self._prefix = index_context.encode() + b"\x00"

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plaintext.encode("utf-8"), self._aad)
        return _PREFIX + binascii.b2a_base64(nonce + ct, newline=False).translate(_URLSAFE).decode("ascii")

    def blind_index(self, value: str) -> str:
        mac = self._mac.copy()
        mac.update(self._prefix + normalise_identifier(value).encode())
        return mac.hexdigest()


def disclose(token: str | None, *, pii: bool, context: str, key: bytes) -> tuple[str | None, bool]:
    """An encrypted identifier as a reply shows it: ``(value, on_file)``. The value is the
    decrypted whole for a caller holding ``pii:read`` (``pii``) and ``None`` for anyone else;
    ``on_file`` says whether one is stored at all. Never a part of the value (see the module's
    rule): it is not even decrypted for a caller who may not see it."""
    if token is None:
        return None, False
    if not pii:
        return None, True
    return decrypt(token, context=context, key=key), True


def hash_secret(secret: str) -> str:
    """Client secrets are 256-bit random strings, so a fast hash is enough (no password
    stretching needed) and keeps the token endpoint cheap."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
