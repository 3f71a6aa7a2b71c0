"""Standard Webhooks v1 signatures.

The secret is ``whsec_`` and the base64 of 32 random bytes; it is shown once, at subscription,
and kept encrypted (:mod:`api.core.crypto`, context ``webhook.secret``). Every attempt carries
``webhook-id`` (the delivery's id, the same on every retry), ``webhook-timestamp`` (seconds,
the attempt's) and ``webhook-signature``: ``v1,`` and the base64 of
HMAC-SHA256(secret, ``"{id}.{timestamp}.{body}"``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PREFIX = "whsec_"
CONTEXT = "webhook.secret"


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(32)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }
