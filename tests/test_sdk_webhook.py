"""The client's webhook verification (Standard Webhooks v1) against the independent
``standardwebhooks`` library: each verifies what the other signs."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks

from sinergi_client import Webhook, WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
BODY = json.dumps({"id": "e1", "type": "referral.created", "occurred_at": "2025-06-01T00:00:00Z",
                   "data": {"id": "r1"}})


def signed_by_library(body: str = BODY, msg_id: str = "msg_1", at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signature = standardwebhooks.Webhook(SECRET).sign(msg_id, at, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}


def test_the_client_verifies_what_the_library_signs():
    headers = signed_by_library()
    assert Webhook(SECRET).verify(BODY, headers)["type"] == "referral.created"
    assert Webhook(SECRET).verify(BODY.encode(), {k.title(): v for k, v in headers.items()})["id"] == "e1"
    # Several signatures while a secret is rotated: one match is enough.
    rotated = dict(headers, **{"webhook-signature": "v1,AAAA " + headers["webhook-signature"]})
    assert Webhook(SECRET).verify(BODY, rotated)["id"] == "e1"


def test_the_library_verifies_what_the_client_signs():
    now = int(time.time())
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(now),
               "webhook-signature": Webhook(SECRET).sign("msg_2", now, BODY)}
    assert standardwebhooks.Webhook(SECRET).verify(BODY, headers)["id"] == "e1"


@pytest.mark.parametrize("change", ["body", "id", "secret", "old", "future", "missing", "version"])
def test_tampered_or_stale_messages_are_refused(change):
    headers = signed_by_library()
    body, secret = BODY, SECRET
    if change == "body":
        body = BODY.replace("r1", "r2")
    elif change == "id":
        headers["webhook-id"] = "msg_other"
    elif change == "secret":
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    elif change == "old":
        headers = signed_by_library(at=datetime.fromtimestamp(time.time() - 301, UTC))
    elif change == "future":
        headers = signed_by_library(at=datetime.fromtimestamp(time.time() + 301, UTC))
    elif change == "missing":
        del headers["webhook-signature"]
    elif change == "version":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)
    # The library agrees.
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body, headers)


def test_within_five_minutes_is_accepted():
    headers = signed_by_library(at=datetime.fromtimestamp(time.time() - 290, UTC))
    assert Webhook(SECRET).verify(BODY, headers)["id"] == "e1"
