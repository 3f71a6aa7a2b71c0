"""Verifying webhooks as a receiver (Standard Webhooks v1).

Sinergi signs each delivery with the subscription's secret (``whsec_<base64 key>``): headers
``webhook-id`` (the same on every retry of one delivery: de-duplicate by it),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">``, several space-separated while a secret is rotated)::

    verifier = Webhook(secret)
    event = verifier.verify(request_body, request_headers)   # raises WebhookVerificationError
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from sinergi_client._exceptions import WebhookVerificationError

PREFIX = "whsec_"
TOLERANCE = 5 * 60


class Webhook:
    def __init__(self, secret: str | bytes, *, tolerance: int = TOLERANCE) -> None:
        if isinstance(secret, str):
            try:
                key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
            except binascii.Error as exc:
                raise ValueError("a webhook secret is whsec_ followed by base64") from exc
        else:
            key = secret
        if not key:
            raise ValueError("empty webhook secret")
        self._key = key
        self.tolerance = tolerance

    def sign(self, msg_id: str, timestamp: int, body: bytes | str) -> str:
        payload = body.encode() if isinstance(body, str) else body
        mac = hmac.new(self._key, f"{msg_id}.{timestamp}.".encode() + payload, hashlib.sha256).digest()
        return "v1," + base64.b64encode(mac).decode()

    def verify(self, body: bytes | str, headers: Mapping[str, str], *, now: float | None = None) -> Any:
        """The parsed JSON body, once the signature and the timestamp check out."""
        lower = {k.lower(): v for k, v in headers.items()}
        msg_id, stamp, signatures = (lower.get("webhook-id"), lower.get("webhook-timestamp"),
                                     lower.get("webhook-signature"))
        if not msg_id or not stamp or not signatures:
            raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
        try:
            timestamp = int(stamp)
        except ValueError as exc:
            raise WebhookVerificationError("webhook-timestamp is not a number") from exc
        current = time.time() if now is None else now
        if timestamp < current - self.tolerance:
            raise WebhookVerificationError("message timestamp too old")
        if timestamp > current + self.tolerance:
            raise WebhookVerificationError("message timestamp too new")
        expected = self.sign(msg_id, timestamp, body).split(",", 1)[1].encode()
        for candidate in signatures.split(" "):
            version, _, value = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(expected, value.encode()):
                return json.loads(body)
        raise WebhookVerificationError("no matching signature")


def verify(secret: str, body: bytes | str, headers: Mapping[str, str]) -> Any:
    return Webhook(secret).verify(body, headers)
